"""`portal-mfa serve NAME`: one service process, on its own database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import import_module

import uvicorn
from fastapi import FastAPI

from portal_mfa.infra.postgres import ensure_database
from portal_mfa.infra.topics import check_event_retention, ensure_topics
from shared.contracts import ADMIN_REPLIES, ALL_TOPICS, DEADLETTER, EVENT_TOPICS
from shared.kafka import security_options
from shared.observability.logs import configure_logging, default_format
from shared.observability.tracing import configure_tracing
from shared.settings import Settings

SERVICES = ("auth", "preferences", "contacts", "audit")


def database_name(service: str) -> str:
    return f"portal_mfa_{service}"


def port_of(settings: Settings, service: str) -> int:
    port: int = getattr(settings, f"{service}_port")
    return port


async def prepare(settings: Settings, service: str) -> str:
    """Create the service's database and the system's topics if missing; return the DB URL.

    Refuses (HistoryAtRisk) when an event topic would delete history.
    """
    # Replies and dead letters are read in order by whoever waits on them: one partition.
    single = {ADMIN_REPLIES, DEADLETTER}
    await ensure_topics(
        settings.kafka_bootstrap,
        {t: 1 if t in single else settings.kafka_partitions for t in ALL_TOPICS},
        replication_factor=settings.kafka_replication_factor,
        security=security_options(settings),
    )
    await check_event_retention(
        settings.kafka_bootstrap,
        EVENT_TOPICS,
        strict=settings.profile != "dev",
        security=security_options(settings),
    )
    return await ensure_database(settings.database_url, database_name(service))


def serve(settings: Settings, service: str) -> None:
    configure_logging(
        service, default_format(settings.profile, settings.log_format), settings.log_level
    )
    configure_tracing(service, settings.trace_dir)
    database_url = asyncio.run(prepare(settings, service))
    create_app: Callable[[Settings, str], FastAPI] = import_module(
        f"services.{service}.main"
    ).create_app
    uvicorn.run(
        create_app(settings, database_url),
        host=settings.host,
        port=port_of(settings, service),
        log_level="warning",
        loop="uvloop",
        # h11, not httptools: httptools answers a malformed header with a bare-text 400
        # before the app can, and every error here is application/problem+json.
        http="h11",
        # One access-log line per request comes from shared.observability.http, and
        # uvicorn's own lines go through the process's log format (no config of its own).
        access_log=False,
        # No `server: uvicorn` banner: it tells a scanner which exploits to try.
        server_header=False,
        log_config=None,
        # Never uvicorn's own X-Forwarded-For handling (it believes loopback by default):
        # auth reads the header itself, from PORTAL_MFA_TRUSTED_PROXIES only.
        proxy_headers=False,
    )

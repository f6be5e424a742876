"""`portal-mfa serve NAME`: one service process, on its own database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import import_module

from fastapi import FastAPI

from portal_mfa.infra.postgres import ensure_database
from portal_mfa.infra.topics import check_event_retention, ensure_topics
from shared.contracts import ADMIN_REPLIES, ALL_TOPICS, DEADLETTER, EVENT_TOPICS
from shared.http.serving import configure, run
from shared.kafka import security_options
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
    configure(settings, service)
    database_url = asyncio.run(prepare(settings, service))
    create_app: Callable[[Settings, str], FastAPI] = import_module(
        f"services.{service}.main"
    ).create_app
    run(create_app(settings, database_url), settings, port_of(settings, service))

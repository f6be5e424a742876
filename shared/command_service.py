"""The process around a command-owning service (preferences, contacts).

It answers commands from one Kafka topic (shared.command_intake: the subscriber, its
admission, back-off and replies), relays its outbox, and serves `/healthz`, `/readyz`,
`/metrics` and the service's admin reads over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import asyncpg
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CollectorRegistry

from shared.admin_identity import AssertionVerifier
from shared.command_intake import CommandIntake
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool
from shared.http import probes
from shared.http.hardening import harden
from shared.http.problems import install_problem_handlers
from shared.kafka import new_producer
from shared.observability.http import FASTAPI_TELEMETRY, observe
from shared.outbox import OutboxRelay
from shared.readiness import database_problem, readiness
from shared.settings import Settings
from shared.signing import RecordSigner

log = logging.getLogger(__name__)
Service = TypeVar("Service")


class Started(Generic[Service]):
    """The service, once the process has opened its pool and built it: what the subscriber
    and the HTTP reads reach (the broker is built before the pool exists)."""

    def __init__(self, build: Callable[[asyncpg.Pool], Service]) -> None:
        self._build = build
        self._service: Service | None = None

    def start(self, pool: asyncpg.Pool) -> Service:
        self._service = self._build(pool)
        return self._service

    def __call__(self) -> Service:
        if self._service is None:
            raise RuntimeError("the service has not started")
        return self._service


def command_service_app(
    *,
    service: Callable[[asyncpg.Pool], Service],
    intake: Callable[[Settings, Callable[[], Service]], CommandIntake],
    reads: APIRouter,
    schema: str,
    settings: Settings,
    database_url: str,
    signer: RecordSigner,
    verifier: AssertionVerifier,
) -> FastAPI:
    """The service (built by `service` once its pool is open) answers the commands of its
    subscriber (made by `intake`) and its `reads`, which reach it as `app.state.service`;
    `schema` is its own tables' SQL, beside the event store's."""
    built = Started(service)
    subscriber = intake(settings, built)
    name = subscriber.name
    broker = subscriber.broker
    registry = CollectorRegistry()
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(database_url)
        await apply_schema(pool, EVENTSTORE_SQL, schema)
        started = built.start(pool)
        producer = new_producer(settings)
        await producer.start()
        relay = OutboxRelay(
            database_url,
            producer,
            signer,
            poll_interval_s=settings.relay_poll_interval_s,
            name=name,
            stuck_after_s=settings.relay_stuck_after_s,
            registry=registry,
        )
        relay_task = asyncio.create_task(relay.run(), name=f"{name}-outbox-relay")
        await broker.start()
        state.update(pool=pool, relay=relay, relay_task=relay_task)
        app.state.service = started
        log.info("%s ready", name)
        try:
            yield
        finally:
            await broker.stop()
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await producer.stop()
            await pool.close()

    app = FastAPI(title=f"portal-mfa {name}", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY)
    app.state.broker = broker
    harden(app)
    observe(app, name, registry)

    @app.get("/healthz", responses=probes.HEALTH)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses=probes.READINESS)
    async def readyz(response: Response) -> dict[str, Any]:
        if "relay" not in state:
            return readiness(response, [f"{name} starting"])
        relay: OutboxRelay = state["relay"]
        relay_task: asyncio.Task[None] = state["relay_task"]
        return readiness(
            response,
            [
                await database_problem(state["pool"]),
                relay.reason,
                f"outbox relay {name} stopped" if relay_task.done() else None,
                subscriber.failure,
            ],
        )

    app.include_router(reads)
    # The admin reads check their bearer assertion with it (shared.admin_access).
    app.state.admin_verifier = verifier
    install_problem_handlers(app)
    return app

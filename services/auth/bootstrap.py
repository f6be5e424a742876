"""auth's composition root: `bootstrap()` wires domain, flows, adapters and entrypoints.

Everything that differs between a run and a test comes in as an argument: the clock,
the random source, and the adapters (the database, the broker, the keys). Nothing here
reads the environment; `main.py` does, and calls this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.auth.adapters.decision_memory import DecisionMemory, enrollment_triggers_sql, listen
from services.auth.adapters.projection import LIVE_SCHEMA, LoginProjection
from services.auth.domain.randomness import SYSTEM_RANDOM, RandomSource
from services.auth.domain.secret_box import SecretBox
from services.auth.entrypoints.http import (
    challenge_route,
    login_route,
    lookup,
    operations,
    portal,
)
from services.auth.entrypoints.http.body_limit import BodyLimit
from services.auth.entrypoints.http.problems import (
    install_problem_handlers,
    note_database_failures,
)
from services.auth.entrypoints.projection import projection_consumer
from services.auth.flows.runtime import AuthRuntime
from shared.admin_identity import AssertionVerifier
from shared.contracts import now_utc
from shared.db import EVENTSTORE_SQL, apply_schema, read_sql
from shared.http.client_address import parse_proxies
from shared.http.hardening import harden
from shared.observability.http import FASTAPI_TELEMETRY, observe
from shared.outbox import OutboxRelay
from shared.service_projection import projection_running
from shared.settings import Settings
from shared.signing import RecordSigner, TrustMap


@dataclass(frozen=True)
class Adapters:
    """What auth talks to. The database and the broker open when the app starts."""

    open_database: Callable[[], Awaitable[asyncpg.Pool]]
    new_producer: Callable[[], AIOKafkaProducer]
    # The outbox relay opens connections of its own (LISTEN for new events).
    database_url: str
    secret_box: SecretBox
    signer: RecordSigner
    trust: TrustMap
    admin_verifier: AssertionVerifier


def bootstrap(
    settings: Settings,
    adapters: Adapters,
    *,
    clock: Callable[[], datetime] = now_utc,
    random: RandomSource = SYSTEM_RANDOM,
) -> FastAPI:
    """The auth service as an ASGI app: the portal API, and while it runs, the projection
    consumer and the outbox relay."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await adapters.open_database()
        projection = LoginProjection()
        await apply_schema(
            pool,
            EVENTSTORE_SQL,
            read_sql("services.auth", "schema.sql"),
            enrollment_triggers_sql(LIVE_SCHEMA),
        )
        async with pool.acquire() as conn:
            await projection.create(conn)
        producer = adapters.new_producer()
        await producer.start()
        consumer = projection_consumer(
            settings, pool, projection, producer, adapters.trust, app.state.metrics
        )
        relay = OutboxRelay(
            adapters.database_url,
            producer,
            adapters.signer,
            poll_interval_s=settings.relay_poll_interval_s,
            name="auth",
            stuck_after_s=settings.relay_stuck_after_s,
            registry=app.state.metrics,
        )
        # Listening before the projection runs: the memory hears of every change it applies.
        listening = asyncio.create_task(
            listen(memory, adapters.database_url), name="auth-lookup-listener"
        )
        try:
            async with projection_running(consumer, "auth-projection"):
                relaying = asyncio.create_task(relay.run(), name="auth-outbox-relay")
                app.state.runtime = AuthRuntime(
                    pool=pool,
                    projection=projection,
                    consumer=consumer,
                    secret_box=adapters.secret_box,
                    clock=clock,
                    relay=relay,
                    trusted_proxies=parse_proxies(settings.trusted_proxies),
                    random=random,
                    memory=memory,
                )
                try:
                    yield
                finally:
                    relaying.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await relaying
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listening
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="portal-mfa auth", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    app.state.admin_verifier = adapters.admin_verifier
    install_problem_handlers(app)
    harden(app)
    app.add_middleware(BodyLimit)
    observe(app, "auth")
    # The lookup's answers in memory (adapters/decision_memory.py): off at once when any
    # request meets a database failure.
    memory = DecisionMemory(registry=app.state.metrics)
    note_database_failures(app, memory)
    lookup.serve_lean(app, "auth")
    challenge_route.serve_lean(app, "auth")
    login_route.serve_lean(app, "auth")
    app.include_router(operations.router)
    app.include_router(portal.router)
    return app

"""bootstrap(): audit's parts wired into one app, with the clock and the trust map given."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi import FastAPI

from services.audit.adapters import SCHEMA, AuditLog
from services.audit.entrypoints import audit_api
from shared.admin_identity import AssertionVerifier
from shared.contracts import EVENT_TOPICS
from shared.db import apply_schema, open_pool, read_sql
from shared.http.hardening import harden
from shared.http.problems import install_problem_handlers
from shared.kafka import new_producer
from shared.observability.http import FASTAPI_TELEMETRY, observe
from shared.service_projection import projection_consumer_from, projection_running
from shared.settings import Settings
from shared.signing import TrustMap

AUDIT_GROUP = "portal-mfa-audit"


def bootstrap(
    settings: Settings,
    database_url: str,
    *,
    trust: TrustMap,
    admin_verifier: AssertionVerifier,
    clock: Callable[[], datetime],
) -> FastAPI:
    """The audit app: on start it opens its database and reads every event topic from
    offset 0 into the log; `clock` is what `explain` answers for when no time is asked."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(database_url)
        await apply_schema(pool, read_sql("services.audit", "schema.sql"), SCHEMA)
        producer = new_producer(settings)
        await producer.start()
        consumer = projection_consumer_from(
            settings,
            "audit",
            group_id=AUDIT_GROUP,
            topics=EVENT_TOPICS,
            pool=pool,
            projection=AuditLog(),
            deadletter=producer,
            trust=trust,
            registry=app.state.metrics,
        )
        try:
            async with projection_running(consumer, "audit-log"):
                app.state.pool, app.state.consumer = pool, consumer
                yield
        finally:
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="portal-mfa audit", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    app.state.admin_verifier = admin_verifier
    install_problem_handlers(app)
    harden(app)
    observe(app, "audit")
    app.include_router(audit_api(trust, clock))
    return app

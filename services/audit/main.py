"""audit entry point: stores every event from offset 0 and answers the log's readers.

It applies only records a trusted owner signed, and keeps the signatures: `/v1/verify`
checks the stored log against them and against each org's hash chain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response

from services.audit.answers import EventsPage, Explanation, VerifyReport
from services.audit.log import SCHEMA, AuditLog, applied_in, history, tail
from services.audit.verification import verify_log
from shared import read_your_writes
from shared.admin_access import AUDIT_READERS, AdminBearer
from shared.admin_identity import verifier_from
from shared.db import apply_schema, open_pool, read_sql
from shared.events import EVENT_TOPICS, now_utc
from shared.http import probes
from shared.http.hardening import harden
from shared.http.path_params import ContactId, MinPosition, OrgId
from shared.http.problems import install_problem_handlers, problems
from shared.kafka import new_producer, security_options
from shared.login_rule.history import requirement_from_history
from shared.observability.http import FASTAPI_TELEMETRY, observe
from shared.projection import ProjectionConsumer
from shared.readiness import database_problem, readiness
from shared.settings import Settings
from shared.signing_settings import trust_from

AUDIT_GROUP = "portal-mfa-audit"
Filter = Annotated[str | None, Query(max_length=100)]


def create_app(settings: Settings, database_url: str) -> FastAPI:
    trust = trust_from(settings)
    admin_verifier = verifier_from(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(database_url)
        await apply_schema(pool, read_sql("services.audit", "schema.sql"), SCHEMA)
        producer = new_producer(settings)
        await producer.start()
        consumer = ProjectionConsumer(
            bootstrap=settings.kafka_bootstrap,
            topics=EVENT_TOPICS,
            pool=pool,
            projection=AuditLog(),
            deadletter=producer,
            trust=trust,
            group_id=AUDIT_GROUP,
            group_instance_id=settings.group_instance_id("audit"),
            batch_size=settings.projection_batch_size,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            security=security_options(settings),
            registry=app.state.metrics,
        )
        await consumer.start()
        task = asyncio.create_task(consumer.run_until_cancelled(), name="audit-log")
        app.state.pool, app.state.consumer = pool, consumer
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="portal-mfa audit", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    app.state.admin_verifier = admin_verifier
    install_problem_handlers(app)
    harden(app)
    observe(app, "audit")

    @app.get("/healthz", responses=probes.HEALTH)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses=probes.READINESS)
    async def readyz(request: Request, response: Response) -> dict[str, Any]:
        consumer: ProjectionConsumer = request.app.state.consumer
        problems = [await database_problem(request.app.state.pool), consumer.reason]
        return readiness(response, problems, lag=await consumer.lag())

    @app.get("/v1/events", responses={200: {"model": EventsPage}, **problems(401, 403, 503)})
    async def events(
        request: Request,
        admin: AdminBearer,
        after: Annotated[int, Query(ge=0)] = 0,
        org: Filter = None,
        contact: Filter = None,
        type: Filter = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        # Without an org filter the log spans every org: for operators (org *) only.
        if org is None:
            admin.for_every_org(AUDIT_READERS)
        else:
            admin.for_org(org, AUDIT_READERS)
        await caught_up_with(request, org, min_position)
        async with request.app.state.pool.acquire() as conn:
            found = await tail(
                conn, after=after, org_id=org, contact_id=contact, event_type=type, limit=limit
            )
        return {
            "events": [envelope for _, envelope in found],
            "next": found[-1][0] if found else after,
        }

    @app.get(
        "/v1/orgs/{org_id}/contacts/{contact_id}/explain",
        responses={200: {"model": Explanation}, **problems(401, 403, 503)},
    )
    async def explain(
        request: Request,
        org_id: OrgId,
        contact_id: ContactId,
        admin: AdminBearer,
        at: datetime | None = None,
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        admin.for_org(org_id, AUDIT_READERS)
        await caught_up_with(request, org_id, min_position)
        moment = at or now_utc()
        async with request.app.state.pool.acquire() as conn:
            decision = requirement_from_history(
                org_id, contact_id, await history(conn, org_id, contact_id, moment)
            )
        return {**decision.as_dict(), "at": moment.isoformat()}

    @app.get("/v1/verify", responses={200: {"model": VerifyReport}, **problems(401, 403, 503)})
    async def verify(request: Request, admin: AdminBearer, org: Filter = None) -> dict[str, Any]:
        if org is None:
            admin.for_every_org(AUDIT_READERS)
        else:
            admin.for_org(org, AUDIT_READERS)
        async with request.app.state.pool.acquire() as conn:
            return await verify_log(conn, trust, org)

    return app


async def caught_up_with(request: Request, org_id: str | None, min_position: str | None) -> None:
    """Return once the log holds the write `min_position` names (shared.read_your_writes)."""
    state = request.app.state
    await read_your_writes.wait_for(state.pool, applied_in(org_id), min_position, state.consumer)

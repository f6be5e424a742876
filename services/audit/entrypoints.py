"""audit's HTTP API: the log's readers (tail, explain, verify) and its probes.

Every read is an admin's, for one org (or for every org: operators only), and can be asked
to wait until the log holds a given write (`min_position`, shared.read_your_writes).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from services.audit import flows
from services.audit.adapters import applied_in
from shared import read_your_writes
from shared.admin_access import AUDIT_READERS, AdminBearer, AdminCredential
from shared.http import probes
from shared.http.login_requirement_view import LoginRequirementView
from shared.http.path_params import ContactId, MinPosition, OrgId
from shared.http.problems import problems
from shared.projection import ProjectionConsumer
from shared.readiness import database_problem, readiness
from shared.signing import TrustMap

Filter = Annotated[str | None, Query(max_length=100)]


class EventsPage(BaseModel):
    # Envelopes as stored: their schema is the event contract (`portal-mfa docs`).
    events: list[dict[str, Any]]
    next: int


class Explanation(LoginRequirementView):
    at: datetime


class VerifyReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    events_checked: int
    forged: int
    gaps: int
    chain_ok: bool
    findings: dict[str, list[dict[str, Any]]]


def audit_api(trust: TrustMap, clock: Callable[[], datetime]) -> APIRouter:
    """The routes; the pool and the consumer are on `app.state` once the app has started."""
    router = APIRouter()

    @router.get("/healthz", responses=probes.HEALTH)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses=probes.READINESS)
    async def readyz(request: Request, response: Response) -> dict[str, Any]:
        consumer: ProjectionConsumer = request.app.state.consumer
        problems = [await database_problem(request.app.state.pool), consumer.reason]
        return readiness(response, problems, lag=await consumer.lag())

    @router.get("/v1/events", responses={200: {"model": EventsPage}, **problems(401, 403, 503)})
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
        may_read(admin, org)
        await caught_up_with(request, org, min_position)
        async with request.app.state.pool.acquire() as conn:
            return await flows.events_page(
                conn, after=after, org_id=org, contact_id=contact, event_type=type, limit=limit
            )

    @router.get(
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
        moment = at or clock()
        async with request.app.state.pool.acquire() as conn:
            decision = await flows.explain(conn, org_id, contact_id, moment)
        return {**decision.as_dict(), "at": moment.isoformat()}

    @router.get("/v1/verify", responses={200: {"model": VerifyReport}, **problems(401, 403, 503)})
    async def verify(request: Request, admin: AdminBearer, org: Filter = None) -> dict[str, Any]:
        may_read(admin, org)
        async with request.app.state.pool.acquire() as conn:
            return await flows.verify_log(conn, trust, org)

    return router


def may_read(admin: AdminCredential, org: str | None) -> None:
    """Refuses unless `admin` may read the org's log; without an org the log spans every
    org: for operators (org *) only."""
    if org is None:
        admin.for_every_org(AUDIT_READERS)
    else:
        admin.for_org(org, AUDIT_READERS)


async def caught_up_with(request: Request, org_id: str | None, min_position: str | None) -> None:
    """Return once the log holds the write `min_position` names (shared.read_your_writes)."""
    state = request.app.state
    await read_your_writes.wait_for(state.pool, applied_in(org_id), min_position, state.consumer)

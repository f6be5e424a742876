"""Liveness, readiness and the login-requirement lookup (`/metrics`: shared.observability)."""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
from fastapi import APIRouter, Response

from services.auth.adapters.held_events import Waiting
from services.auth.entrypoints.http.dependencies import Runtime
from services.auth.entrypoints.http.lookup import remembered_login_requirement
from shared.admin_access import AUDIT_READERS, AdminBearer
from shared.http import probes
from shared.http.login_requirement_view import LoginRequirementView
from shared.http.path_params import ContactId, MinPosition, OrgId
from shared.http.problems import problems
from shared.readiness import database_problem, readiness

router = APIRouter()


@router.get("/healthz", responses=probes.HEALTH)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=probes.READINESS)
async def readyz(runtime: Runtime, response: Response) -> dict[str, Any]:
    database = await database_problem(runtime.pool)
    if database is not None:
        runtime.memory.failed("readiness")
    problems = [
        database,
        runtime.consumer.reason,
        runtime.relay.reason if runtime.relay is not None else None,
    ]
    # Aggregates waiting on a version gap leave readiness alone: only their own decisions
    # fail closed, and every other contact must still be able to log in.
    waiting: Waiting | None = None
    with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        async with runtime.pool.acquire(timeout=2) as conn:
            waiting = await runtime.projection.waiting(conn)
    return readiness(
        response,
        problems,
        projection_lag=await runtime.consumer.lag(),
        aggregates_waiting=waiting.aggregates if waiting else None,
        held_events=waiting.events if waiting else None,
        lookup_memory=runtime.memory.state(),
    )


@router.get(
    "/v1/orgs/{org_id}/contacts/{contact_id}/login-requirement",
    responses={200: {"model": LoginRequirementView}, **problems(401, 403, 503)},
)
async def get_login_requirement(
    runtime: Runtime,
    org_id: OrgId,
    contact_id: ContactId,
    admin: AdminBearer,
    min_position: MinPosition = None,
) -> dict[str, object]:
    # Who must log in how, and whether a contact exists, is the org's business only.
    admin.for_org(org_id, AUDIT_READERS)
    runtime.require_ready()
    # Declared here for the OpenAPI document; lookup.py's lean route,
    # placed ahead of this one, answers the same way.
    answer = await remembered_login_requirement(
        runtime, runtime.memory, org_id, contact_id, min_position
    )
    return answer.decision.as_dict()

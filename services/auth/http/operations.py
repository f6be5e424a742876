"""Liveness, readiness, metrics, and the login-requirement lookup."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.auth.decisions import login_requirement
from services.auth.runtime import Runtime

router = APIRouter()

Identifier = Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: Runtime, response: Response) -> dict[str, Any]:
    ready = runtime.consumer.ready
    if not ready:
        response.status_code = 503
    return {"ready": ready, "projection_lag": await runtime.consumer.lag()}


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/orgs/{org_id}/contacts/{contact_id}/login-requirement")
async def get_login_requirement(
    runtime: Runtime, org_id: str = Identifier, contact_id: str = Identifier
) -> dict[str, object]:
    runtime.require_ready()
    async with runtime.pool.acquire() as conn:
        decision = await login_requirement(conn, runtime.projection, org_id, contact_id)
    return decision.as_dict()

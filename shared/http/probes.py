"""How the OpenAPI documents describe the probes every service serves: /healthz, /readyz
and /metrics (liveness, readiness with its reasons, Prometheus text)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    # Services add their own figures (projection lag, held events, ...).
    model_config = ConfigDict(extra="allow")

    ready: bool
    reasons: list[str]


HEALTH: dict[int | str, dict[str, Any]] = {200: {"model": Health}}
READINESS: dict[int | str, dict[str, Any]] = {
    200: {"model": Readiness, "description": "Ready"},
    503: {"model": Readiness, "description": "Not ready, with every reason; see Retry-After"},
}
METRICS: dict[str, Any] = {
    "response_class": PlainTextResponse,
    "responses": {200: {"description": "Prometheus text exposition format"}},
}

"""The audit service's answers as its OpenAPI document declares them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.http.login_requirement_view import LoginRequirementView


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

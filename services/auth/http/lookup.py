"""The login-requirement lookup, served on a lean path: the hottest read there is.

`operations.get_login_requirement` declares the route for FastAPI (the OpenAPI document,
its parameters, answers and security scheme); the Starlette route here is placed ahead
of it on the same path and answers instead, without FastAPI's per-request machinery
(dependency solving, parameter models, response serialization), which cost as much CPU
as the answer itself (docs/performance.md). It runs inside the same app, so the same
middleware (security headers, request id, access log, metrics, span) and the same
exception handlers (401/403 problems, 503 while the database is away) apply. What
FastAPI would check it checks the same way: the path ids and `min_position` against the
declared patterns (422 problem naming the field), then the admin assertion for the org.

The answer comes from this replica's memory while it is sure of it
(services/auth/adapters/decision_memory.py), else from the database.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from services.auth.adapters.decision_memory import Answer, DecisionMemory
from services.auth.decisions import login_requirement
from services.auth.positions import applied_in_org
from services.auth.runtime import AuthRuntime
from shared import read_your_writes
from shared.admin_access import AUDIT_READERS
from shared.admin_identity import AssertionVerifier
from shared.login_rule.login_requirement import LoginRequirement
from shared.read_your_writes import POSITION_PATTERN

PATH: Final = "/v1/orgs/{org_id}/contacts/{contact_id}/login-requirement"
# shared.http.path_params' ids and read_your_writes' position, matched whole (fullmatch:
# `$` alone would let a trailing newline through).
_ID: Final = re.compile(r"[A-Za-z0-9._:@-]{1,100}")
_POSITION: Final = re.compile(POSITION_PATTERN.removeprefix("^").removesuffix("$"))


async def remembered_login_requirement(
    runtime: AuthRuntime,
    memory: DecisionMemory,
    org_id: str,
    contact_id: str,
    min_position: str | None = None,
) -> Answer:
    """From memory while it is sure, else read (and kept if nothing changed meanwhile).
    A reader naming a write (`min_position`) always reads the database once the
    projection has applied it: the memory may not have heard of that write yet. Login's
    own check does not come here: it reads under the account's lock, in its transaction."""
    if min_position is None:
        remembered = memory.get(org_id, contact_id)
        if remembered is not None:
            return remembered
    else:
        await read_your_writes.wait_for(
            runtime.pool, applied_in_org(runtime.projection, org_id), min_position, runtime.consumer
        )
    generation = memory.generation
    async with runtime.pool.acquire() as conn:
        decision = await login_requirement(conn, runtime.projection, org_id, contact_id)
    answer = Answer(decision, _body(decision))
    memory.put(org_id, contact_id, answer, generation)
    return answer


def _body(decision: LoginRequirement) -> bytes:
    # As Starlette's JSONResponse renders a body.
    return json.dumps(
        decision.as_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


def _malformed(org_id: str, contact_id: str, min_position: str | None) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for name, value in (("org_id", org_id), ("contact_id", contact_id)):
        if not _ID.fullmatch(value):
            errors.append({"loc": ("path", name), "type": "string_pattern_mismatch"})
    if min_position is not None and not _POSITION.fullmatch(min_position):
        errors.append({"loc": ("query", "min_position"), "type": "string_pattern_mismatch"})
    return errors


async def lookup(request: Request) -> Response:
    org_id: str = request.path_params["org_id"]
    contact_id: str = request.path_params["contact_id"]
    min_position = request.query_params.get("min_position")
    errors = _malformed(org_id, contact_id, min_position)
    if errors:
        raise RequestValidationError(errors)
    # Who must log in how, and whether a contact exists, is the org's business only.
    verifier: AssertionVerifier = request.app.state.admin_verifier
    verifier.for_read(_bearer(request), org_id=org_id, scopes=AUDIT_READERS)
    runtime: AuthRuntime = request.app.state.runtime
    runtime.require_ready()
    answer = await remembered_login_requirement(
        runtime, runtime.memory, org_id, contact_id, min_position
    )
    return Response(answer.body, media_type="application/json")


def _bearer(request: Request) -> str | None:
    # As shared.admin_access reads it (HTTPBearer without auto_error): anything but a
    # bearer credential is no credential, and the verifier refuses it as a problem.
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


class LeanRoute(Route):
    """A Starlette route that names itself in the scope as FastAPI's routes do (the
    access log and the span read the route template from it), and answers GET only."""

    def __init__(self) -> None:
        super().__init__(PATH, lookup, methods=["GET"], name="get_login_requirement")
        self.methods = {"GET"}  # Starlette adds HEAD; the declared route has GET only

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def serve_lean(app: FastAPI) -> None:
    """Put the lean route ahead of the declared one: call before including the router
    that declares it (the first route to match a path answers)."""
    app.router.routes.append(LeanRoute())

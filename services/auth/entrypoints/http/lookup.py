"""The login-requirement lookup, served on a lean path: the hottest read there is.

`operations.get_login_requirement` declares the route for FastAPI (the OpenAPI document,
its parameters, answers and security scheme). A GET on that path is answered here
instead, by `LeanLookup`, the outermost layer of auth's app: it skips FastAPI's
per-request machinery (dependency solving, parameter models, response serialization)
and the Prometheus instrumentator's (a Request, a route scan and a Response per
request), which together cost more CPU than the answer itself (docs/performance.md).
What the rest of the app gives every answer it gives too, with the same code
(`LeanPath`, lean_path.py): the security headers, the request id, access log line and
span, the request-duration metric and the app's own exception handlers (401/403
problems, 422, 503 while the database is away, 500). It checks what FastAPI would, the
same way: the path ids and `min_position` against the declared patterns (422 naming the
field), then the admin assertion for the org. Any other method on the path goes through
the app as before (405).

The answer comes from this replica's memory while it is sure of it
(services/auth/adapters/decision_memory.py), else from the database.
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth.adapters.decision_memory import Answer, DecisionMemory
from services.auth.adapters.positions import applied_in_org
from services.auth.entrypoints.http.lean_path import PATH_ID, LeanPath, json_body, serve_ahead
from services.auth.flows.decisions import login_requirement
from services.auth.flows.runtime import AuthRuntime
from shared import read_your_writes
from shared.admin_access import AUDIT_READERS
from shared.admin_identity import AssertionVerifier
from shared.login_rule.login_requirement import LoginRequirement
from shared.read_your_writes import POSITION_PATTERN

PATH: Final = "/v1/orgs/{org_id}/contacts/{contact_id}/login-requirement"
# read_your_writes' position, matched whole (fullmatch: `$` alone would let a trailing
# newline through).
_POSITION: Final = re.compile(POSITION_PATTERN.removeprefix("^").removesuffix("$"))
# The path as Starlette's router matches it (a segment is anything but a slash).
_PATH: Final = re.compile(r"/v1/orgs/([^/]+)/contacts/([^/]+)/login-requirement")


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
    return json_body(decision.as_dict())


def _malformed(org_id: str, contact_id: str, min_position: str | None) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for name, value in (("org_id", org_id), ("contact_id", contact_id)):
        if not PATH_ID.fullmatch(value):
            errors.append({"loc": ("path", name), "type": "string_pattern_mismatch"})
    if min_position is not None and not _POSITION.fullmatch(min_position):
        errors.append({"loc": ("query", "min_position"), "type": "string_pattern_mismatch"})
    return errors


def _bearer(scope: Scope) -> str | None:
    # As shared.admin_access reads it (HTTPBearer without auto_error): anything but a
    # bearer credential is no credential, and the verifier refuses it as a problem.
    authorization = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
    )
    scheme, credentials = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


class LeanLookup(LeanPath):
    """Outermost ASGI layer: a GET on the lookup's path is answered here, anything else
    goes to the app."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, service: str) -> None:
        super().__init__(
            app,
            fastapi,
            service,
            path=PATH,
            method="GET",
            headers=[(b"content-type", b"application/json")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            found = _PATH.fullmatch(scope["path"])
            if found is not None:
                scope["path_params"] = {"org_id": found[1], "contact_id": found[2]}
                await self.serve(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def answer_body(self, scope: Scope, receive: Receive) -> bytes:
        """The lookup, read from the ASGI scope as FastAPI would read its parameters."""
        org_id: str = scope["path_params"]["org_id"]
        contact_id: str = scope["path_params"]["contact_id"]
        query = scope["query_string"]
        # As FastAPI reads a single query value: the last one given.
        min_position = QueryParams(query).get("min_position") if query else None
        errors = _malformed(org_id, contact_id, min_position)
        if errors:
            raise RequestValidationError(errors)
        # Who must log in how, and whether a contact exists, is the org's business only.
        app = self.fastapi
        verifier: AssertionVerifier = app.state.admin_verifier
        verifier.for_read(_bearer(scope), org_id=org_id, scopes=AUDIT_READERS)
        runtime: AuthRuntime = app.state.runtime
        runtime.require_ready()
        answer = await remembered_login_requirement(
            runtime, runtime.memory, org_id, contact_id, min_position
        )
        return answer.body


def serve_lean(app: FastAPI, service: str = "auth") -> None:
    """Answer the lookup ahead of everything else; call after the app's middleware and
    observation are installed (it wraps the stack they build)."""
    serve_ahead(app, LeanLookup, service)

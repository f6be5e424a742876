"""The password step (POST /v1/portals/{org_id}/login), served on a lean path: its target
is a share of the bare argon2id rate (DESIGN.md §9), so every millisecond of CPU a login
spends outside the hash is taken from the hashes, and FastAPI's per-request machinery
was the largest part of it (docs/performance.md, "The password step").

`portal.log_in` declares the route for FastAPI (the OpenAPI document, its body model,
answers). A well-formed login (an org id the declared path pattern accepts, a JSON body
the route's own `Login` model accepts, within the body limit) is answered here instead,
by `LeanLogin`, an outer layer of auth's app, with what the rest of the app gives every
answer, with the same code (`LeanPath`, lean_path.py), and the client address read as
the route reads it (the peer, and X-Forwarded-For only through trusted proxies).
Anything else goes through the app as before, its body handed on unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Final

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.challenge_route import _body_within_limit, _replaying
from services.auth.entrypoints.http.lean_path import LeanPath, serve_ahead
from services.auth.entrypoints.http.lookup import _ID
from services.auth.entrypoints.http.portal import Login
from services.auth.flows import login
from services.auth.flows.runtime import AuthRuntime
from shared.http.client_address import client_address

PATH: Final = "/v1/portals/{org_id}/login"
# The path as Starlette's router matches it (a segment is anything but a slash).
_PATH: Final = re.compile(r"/v1/portals/([^/]+)/login")
# The one content type taken here; FastAPI reads others too, and those go to it.
_JSON: Final = b"application/json"


class LeanLogin(LeanPath):
    """Outer ASGI layer: a well-formed login is answered here, anything else goes to the
    app."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, service: str) -> None:
        super().__init__(
            app,
            fastapi,
            service,
            path=PATH,
            method="POST",
            # The route's own: it may carry a session or a one-time token.
            headers=[(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        # An org id the declared pattern refuses: the app answers it (422).
        if found is None or not _ID.fullmatch(found[1]):
            await self.app(scope, receive, send)
            return
        read, body = await _body_within_limit(scope, receive)
        parsed = _well_formed(scope, body) if body is not None else None
        if parsed is None:
            await self.app(scope, _replaying(read, receive), send)
            return
        scope["path_params"] = {"org_id": found[1]}
        scope["login"] = parsed
        await self.serve(scope, receive, send)

    async def answer_body(self, scope: Scope, receive: Receive) -> bytes:
        parsed: Login = scope.pop("login")
        runtime: AuthRuntime = self.fastapi.state.runtime
        outcome = await login.login(
            runtime,
            scope["path_params"]["org_id"],
            parsed.email,
            parsed.password,
            _client_address(runtime, scope),
        )
        # As Starlette's JSONResponse renders the route's dict (all strings).
        return json.dumps(
            answers.login_answer(outcome),
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")


def _well_formed(scope: Scope, body: bytes) -> Login | None:
    """The login as the route's model reads the body FastAPI would hand it, or None for
    anything the app should answer itself."""
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is not None:
                return None  # two of them: the app decides which counts
            content_type = value
    if content_type != _JSON or not body:
        return None
    try:
        value = json.loads(body)  # as Starlette's Request.json()
    except ValueError:
        return None
    try:
        return Login.model_validate(value)
    except ValidationError:
        return None


def _client_address(runtime: AuthRuntime, scope: Scope) -> str:
    """As `portal._client_address` reads it from a Request: the peer, and every
    X-Forwarded-For header in order (believed only through trusted proxies)."""
    peer = scope.get("client")
    forwarded = ",".join(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    )
    return client_address(peer[0] if peer else "unknown", forwarded, runtime.trusted_proxies)


def serve_lean(app: FastAPI, service: str = "auth") -> None:
    """Answer well-formed logins ahead of the app's stack; call after the app's middleware
    and observation are installed (it wraps the stack they build)."""
    serve_ahead(app, LeanLogin, service)

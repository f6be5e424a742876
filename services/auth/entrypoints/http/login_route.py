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

import re
from typing import Final

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.lean_path import (
    PATH_ID,
    LeanPath,
    body_within_limit,
    json_body,
    replaying,
    serve_ahead,
    well_formed,
)
from services.auth.entrypoints.http.portal import Login
from services.auth.flows import login
from services.auth.flows.runtime import AuthRuntime
from shared.http.client_address import client_address

PATH: Final = "/v1/portals/{org_id}/login"
# The path as Starlette's router matches it (a segment is anything but a slash).
_PATH: Final = re.compile(r"/v1/portals/([^/]+)/login")


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
        if found is None or not PATH_ID.fullmatch(found[1]):
            await self.app(scope, receive, send)
            return
        read, body = await body_within_limit(scope, receive)
        parsed = well_formed(scope, body, Login) if body is not None else None
        if parsed is None:
            await self.app(scope, replaying(read, receive), send)
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
        return json_body(answers.login_answer(outcome))


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

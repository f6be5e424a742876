"""The MFA challenge (POST /v1/mfa/challenge), served on a lean path: every login with a
second factor passes here, and FastAPI's per-request machinery cost about as much CPU as
the flow itself (docs/performance.md, "MFA challenge").

`portal.answer_challenge` declares the route for FastAPI (the OpenAPI document, its body
model, answers). A well-formed challenge (a JSON body the route's own `Challenge` model
accepts, within the body limit) is answered here instead, by `LeanChallenge`, an outer
layer of auth's app, with what the rest of the app gives every answer, with the same
code (`LeanPath`, lean_path.py): the security headers, the request id, access log line
and span, the request-duration metric and the app's own exception handlers (401/429/503
problems, 500). Anything else (another method, another content type, a body too large,
unreadable or malformed) goes through the app as before, its body handed on unchanged:
the app's checks and answers stay the only ones for it.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.lean_path import (
    LeanPath,
    body_within_limit,
    json_body,
    replaying,
    serve_ahead,
    well_formed,
)
from services.auth.entrypoints.http.portal import Challenge
from services.auth.flows import challenge
from services.auth.flows.runtime import AuthRuntime

PATH: Final = "/v1/mfa/challenge"


class LeanChallenge(LeanPath):
    """Outer ASGI layer: a well-formed POST on the challenge's path is answered here,
    anything else goes to the app."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, service: str) -> None:
        super().__init__(
            app,
            fastapi,
            service,
            path=PATH,
            method="POST",
            headers=[(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        read, body = await body_within_limit(scope, receive)
        parsed = well_formed(scope, body, Challenge) if body is not None else None
        if parsed is None:
            await self.app(scope, replaying(read, receive), send)
            return
        scope["challenge"] = parsed
        await self.serve(scope, receive, send)

    async def answer_body(self, scope: Scope, receive: Receive) -> bytes:
        parsed: Challenge = scope.pop("challenge")
        runtime: AuthRuntime = self.fastapi.state.runtime
        passed = await challenge.answer(
            runtime, parsed.challenge_token, parsed.otp, parsed.backup_code
        )
        return json_body(answers.second_factor_answer(passed))


def serve_lean(app: FastAPI, service: str = "auth") -> None:
    """Answer well-formed challenges ahead of the app's stack; call after the app's
    middleware and observation are installed (it wraps the stack they build)."""
    serve_ahead(app, LeanChallenge, service)

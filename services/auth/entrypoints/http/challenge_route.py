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

import json
from typing import Final

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.body_limit import MAX_BODY_BYTES
from services.auth.entrypoints.http.lean_path import LeanPath, serve_ahead
from services.auth.entrypoints.http.portal import Challenge
from services.auth.flows import challenge
from services.auth.flows.runtime import AuthRuntime

PATH: Final = "/v1/mfa/challenge"
# The one content type taken here; FastAPI reads others too (none, `+json`, parameters),
# and those go to it.
_JSON: Final = b"application/json"


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
        read, body = await _body_within_limit(scope, receive)
        parsed = _well_formed(scope, body) if body is not None else None
        if parsed is None:
            await self.app(scope, _replaying(read, receive), send)
            return
        scope["challenge"] = parsed
        await self.serve(scope, receive, send)

    async def answer_body(self, scope: Scope, receive: Receive) -> bytes:
        parsed: Challenge = scope.pop("challenge")
        runtime: AuthRuntime = self.fastapi.state.runtime
        passed = await challenge.answer(
            runtime, parsed.challenge_token, parsed.otp, parsed.backup_code
        )
        # As Starlette's JSONResponse renders the route's dict (all strings and an int).
        return json.dumps(
            answers.second_factor_answer(passed),
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")


async def _body_within_limit(scope: Scope, receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages read, and the whole body if it came complete within the limit
    (else None: the app reads on and answers, 413 included)."""
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value
            break
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return [], None
    read: list[Message] = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return read, None
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:
            return read, None
        if not message.get("more_body", False):
            break
    return read, b"".join(m.get("body", b"") for m in read)


def _well_formed(scope: Scope, body: bytes) -> Challenge | None:
    """The challenge as the route's model reads the body FastAPI would hand it, or None
    for anything the app should answer itself."""
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
        return Challenge.model_validate(value)
    except ValidationError:
        return None


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """`receive`, after the messages already read from it."""
    pending = list(read)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def serve_lean(app: FastAPI, service: str = "auth") -> None:
    """Answer well-formed challenges ahead of the app's stack; call after the app's
    middleware and observation are installed (it wraps the stack they build)."""
    serve_ahead(app, LeanChallenge, service)

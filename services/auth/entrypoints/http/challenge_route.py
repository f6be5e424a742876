"""The MFA challenge (POST /v1/mfa/challenge), served on a lean path: every login with a
second factor passes here, and FastAPI's per-request machinery cost about as much CPU as
the flow itself (docs/performance.md, "MFA challenge").

`portal.answer_challenge` declares the route for FastAPI (the OpenAPI document, its body
model, answers). A well-formed challenge (a JSON body the route's own `Challenge` model
accepts, within the body limit) is answered here instead, by `LeanChallenge`, an outer
layer of auth's app, with what the rest of the app gives every answer: the security
headers (`AnswerHeaders`' rule), the request id, access log line and span
(`RequestObservation`), the request-duration metric (same histogram, same labels) and
the app's own exception handlers (401/429/503 problems, 500). Anything else (another
method, another content type, a body too large, unreadable or malformed) goes through the
app as before, its body handed on unchanged: the app's checks and answers stay the only
ones for it.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any, Final

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.body_limit import MAX_BODY_BYTES
from services.auth.entrypoints.http.lookup import LeanLookup, _histogram
from services.auth.entrypoints.http.portal import Challenge
from services.auth.flows import challenge
from services.auth.flows.runtime import AuthRuntime
from shared.http.hardening import AnswerHeaders, HeaderRule
from shared.observability.http import RequestObservation

PATH: Final = "/v1/mfa/challenge"
_TEMPLATE: Final = SimpleNamespace(path=PATH)
# The one content type taken here; FastAPI reads others too (none, `+json`, parameters),
# and those go to it.
_JSON: Final = b"application/json"


class LeanChallenge:
    """Outer ASGI layer: a well-formed POST on the challenge's path is answered here,
    anything else goes to the app."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, service: str) -> None:
        self.app = app
        self.fastapi = fastapi
        self.duration = _histogram(fastapi)
        self._ok_duration = self.duration.labels(PATH, "POST", "200") if self.duration else None
        self.observed = RequestObservation(self._answer, service)
        # The headers every answer of the app gets (shared.http.hardening), if it has any:
        # the app's own layer's, or the one the lookup's lean layer took from it.
        self.rule: HeaderRule | None = (
            app.rule if isinstance(app, AnswerHeaders | LeanLookup) else None
        )
        self._headers: list[tuple[bytes, bytes]] | None = None  # of a 200, with the rule's

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
        scope["app"] = self.fastapi
        scope["route"] = _TEMPLATE  # the access log and the span name the route
        scope["challenge"] = parsed
        await self.observed(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        parsed: Challenge = scope.pop("challenge")
        try:
            runtime: AuthRuntime = self.fastapi.state.runtime
            passed = await challenge.answer(
                runtime, parsed.challenge_token, parsed.otp, parsed.backup_code
            )
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # RequestObservation answers 500 problem+json and logs it
            refusal: Response = await handler(Request(scope, receive), exc)
            await (AnswerHeaders(refusal, self.rule) if self.rule else refusal)(
                scope, receive, send
            )
            status = refusal.status_code
        else:
            # As Starlette's JSONResponse renders the route's dict (all strings and an int).
            body = json.dumps(
                answers.second_factor_answer(passed),
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            ).encode("utf-8")
            if self._headers is None:
                self._headers = _with_rule(self.rule, scope)  # once: it is the same for all
            length = (b"content-length", str(len(body)).encode())
            await send(
                {"type": "http.response.start", "status": 200, "headers": [length, *self._headers]}
            )
            await send({"type": "http.response.body", "body": body})
            status = 200
        took = max(time.perf_counter() - started, 0.0)
        if status == 200 and self._ok_duration is not None:
            self._ok_duration.observe(took)
        elif self.duration is not None:
            self.duration.labels(PATH, "POST", str(status)).observe(took)

    def _handler_for(self, exc: Exception) -> Any:
        # As Starlette's ExceptionMiddleware picks one: the nearest class in the MRO.
        handlers = self.fastapi.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None


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


def _with_rule(rule: HeaderRule | None, scope: Scope) -> list[tuple[bytes, bytes]]:
    """A 200's headers after its length, as the route and the app's rule leave them."""
    message: Message = {
        "type": "http.response.start",
        "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    }
    if rule is not None:
        rule(scope, MutableHeaders(scope=message))
    return list(message["headers"])


def serve_lean(app: FastAPI, service: str = "auth") -> None:
    """Answer well-formed challenges ahead of the app's stack; call after the app's
    middleware and observation are installed (it wraps the stack they build)."""
    build = app.build_middleware_stack

    def build_with_lean_challenge() -> ASGIApp:
        return LeanChallenge(build(), app, service)

    app.build_middleware_stack = build_with_lean_challenge  # type: ignore[method-assign]

"""The password step (POST /v1/portals/{org_id}/login), served on a lean path: its target
is a share of the bare argon2id rate (DESIGN.md §9), so every millisecond of CPU a login
spends outside the hash is taken from the hashes, and FastAPI's per-request machinery
was the largest part of it (docs/performance.md, "The password step").

`portal.log_in` declares the route for FastAPI (the OpenAPI document, its body model,
answers). A well-formed login (an org id the declared path pattern accepts, a JSON body
the route's own `Login` model accepts, within the body limit) is answered here instead,
by `LeanLogin`, an outer layer of auth's app, as the challenge is by
`challenge_route.LeanChallenge`: the same headers rule, request id, access log line and
span, duration histogram and exception handlers; the client address read as the route
reads it (the peer, and X-Forwarded-For only through trusted proxies). Anything else
goes through the app as before, its body handed on unchanged.
"""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace
from typing import Any, Final

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.challenge_route import (
    LeanChallenge,
    _body_within_limit,
    _replaying,
    _with_rule,
)
from services.auth.entrypoints.http.lookup import _ID, LeanLookup, _histogram
from services.auth.entrypoints.http.portal import Login
from services.auth.flows import login
from services.auth.flows.runtime import AuthRuntime
from shared.http.client_address import client_address
from shared.http.hardening import AnswerHeaders, HeaderRule
from shared.observability.http import RequestObservation

PATH: Final = "/v1/portals/{org_id}/login"
# The path as Starlette's router matches it (a segment is anything but a slash).
_PATH: Final = re.compile(r"/v1/portals/([^/]+)/login")
_TEMPLATE: Final = SimpleNamespace(path=PATH)
# The one content type taken here; FastAPI reads others too, and those go to it.
_JSON: Final = b"application/json"


class LeanLogin:
    """Outer ASGI layer: a well-formed login is answered here, anything else goes to the
    app."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, service: str) -> None:
        self.app = app
        self.fastapi = fastapi
        self.duration = _histogram(fastapi)
        self._ok_duration = self.duration.labels(PATH, "POST", "200") if self.duration else None
        self.observed = RequestObservation(self._answer, service)
        # The headers every answer of the app gets (shared.http.hardening), if it has any:
        # the app's own layer's, or the one an inner lean layer took from it.
        self.rule: HeaderRule | None = (
            app.rule if isinstance(app, AnswerHeaders | LeanLookup | LeanChallenge) else None
        )
        self._headers: list[tuple[bytes, bytes]] | None = None  # of a 200, with the rule's

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
        scope["app"] = self.fastapi
        scope["route"] = _TEMPLATE  # the access log and the span name the route
        scope["path_params"] = {"org_id": found[1]}
        scope["login"] = parsed
        await self.observed(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        parsed: Login = scope.pop("login")
        try:
            runtime: AuthRuntime = self.fastapi.state.runtime
            outcome = await login.login(
                runtime,
                scope["path_params"]["org_id"],
                parsed.email,
                parsed.password,
                _client_address(runtime, scope),
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
            # As Starlette's JSONResponse renders the route's dict (all strings).
            body = json.dumps(
                answers.login_answer(outcome),
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
    build = app.build_middleware_stack

    def build_with_lean_login() -> ASGIApp:
        return LeanLogin(build(), app, service)

    app.build_middleware_stack = build_with_lean_login  # type: ignore[method-assign]

"""One route of auth's app answered ahead of FastAPI's per-request machinery, where that
machinery costs as much CPU as the answer itself (docs/performance.md: the lookup, the
MFA challenge).

`LeanPath` is what such a layer owes every answer, the same as the rest of the app gives
it: the security headers (the app's own `AnswerHeaders` rule), the request id, access
log line and span (`RequestObservation`), the request-duration metric (same histogram,
same labels) and the app's own exception handlers for a refusal. A route's layer decides
which requests it takes and gives the body of a 200 (`answer_body`); anything it does not
take goes to the app. What reading a request the way the route would takes (the body
within the limit, replayed to the app when the layer declines it; a JSON body the route's
model accepts; ids the path pattern accepts) and rendering its 200 are here too, so every
lean layer reads and renders alike.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final, TypeVar

from fastapi import FastAPI
from prometheus_client import Histogram
from pydantic import BaseModel, ValidationError
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.auth.entrypoints.http.body_limit import MAX_BODY_BYTES
from shared.http.hardening import AnswerHeaders, HeaderRule
from shared.observability.http import HTTP_DURATION, RequestObservation

Headers = list[tuple[bytes, bytes]]
Model = TypeVar("Model", bound=BaseModel)
# The one content type a lean path takes; FastAPI reads others too (none, `+json`,
# parameters), and those go to it.
_JSON: Final = b"application/json"
# shared.http.path_params' ids, matched whole (fullmatch: `$` alone would let a trailing
# newline through).
PATH_ID: Final = re.compile(r"[A-Za-z0-9._:@-]{1,100}")


class LeanPath(ABC):
    """Outer ASGI layer answering `method` on `path` (the route's template, as the metric
    and the access log name it) with a 200 carrying `headers` (the route's own, before
    the app's rule), or the app's refusal for what the flow raised."""

    def __init__(
        self,
        app: ASGIApp,
        fastapi: FastAPI,
        service: str,
        *,
        path: str,
        method: str,
        headers: Headers,
    ) -> None:
        self.app = app
        self.fastapi = fastapi
        self.path = path
        self.method = method
        self._template = SimpleNamespace(path=path)
        self.duration = _histogram(fastapi)
        # The 200s' series, looked up once: `labels()` hashes three strings per call.
        self._ok_duration = self.duration.labels(path, method, "200") if self.duration else None
        self.observed = RequestObservation(self._answer, service)
        # The headers every answer of the app gets (shared.http.hardening), if it has any:
        # the app's own layer's, or the one a lean layer inside this one took from it.
        self.rule: HeaderRule | None = (
            app.rule if isinstance(app, AnswerHeaders | LeanPath) else None
        )
        self._route_headers = headers
        self._headers: Headers | None = None  # of a 200, with the rule's

    @abstractmethod
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`serve` a request the route's layer takes, hand anything else to `self.app`."""

    @abstractmethod
    async def answer_body(self, scope: Scope, receive: Receive) -> bytes:
        """The body of the 200 (JSON, as the route's response would render it); raises
        what the route would, for the app's exception handlers to answer."""

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request this layer takes, as the route would."""
        scope["app"] = self.fastapi
        scope["route"] = self._template  # the access log and the span name the route
        await self.observed(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await self.answer_body(scope, receive)
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
            if self._headers is None:
                # Once: the API's rule does not depend on the request.
                self._headers = _with_rule(self.rule, scope, self._route_headers)
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
            self.duration.labels(self.path, self.method, str(status)).observe(took)

    def _handler_for(self, exc: Exception) -> Any:
        # As Starlette's ExceptionMiddleware picks one: the nearest class in the MRO.
        handlers = self.fastapi.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None


def _with_rule(rule: HeaderRule | None, scope: Scope, headers: Headers) -> Headers:
    """A 200's headers after its length, as the route and the app's rule leave them."""
    message: Message = {"type": "http.response.start", "headers": list(headers)}
    if rule is not None:
        rule(scope, MutableHeaders(scope=message))
    return list(message["headers"])


def _histogram(app: FastAPI) -> Histogram | None:
    """The request-duration histogram shared.observability.http registered for the app
    (labels handler, method, status), if it is observed."""
    registry = getattr(app.state, "metrics", None)
    if registry is None:
        return None
    found = registry._names_to_collectors.get(HTTP_DURATION)
    return found if isinstance(found, Histogram) else None


def serve_ahead(
    app: FastAPI, layer: Callable[[ASGIApp, FastAPI, str], LeanPath], service: str
) -> None:
    """Put `layer` outside the stack the app builds; call after the app's middleware and
    observation are installed (it wraps the stack they build)."""
    build = app.build_middleware_stack

    def build_with_lean_path() -> ASGIApp:
        return layer(build(), app, service)

    app.build_middleware_stack = build_with_lean_path  # type: ignore[method-assign]


async def body_within_limit(scope: Scope, receive: Receive) -> tuple[list[Message], bytes | None]:
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


def replaying(read: list[Message], receive: Receive) -> Receive:
    """`receive`, after the messages already read from it."""
    pending = list(read)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def well_formed(scope: Scope, body: bytes, model: type[Model]) -> Model | None:
    """The body as the route's `model` reads what FastAPI would hand it, or None for
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
        return model.model_validate(value)
    except ValidationError:
        return None


def json_body(value: object) -> bytes:
    """`value` as Starlette's JSONResponse renders it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )

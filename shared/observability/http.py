"""One line per app: request ids, the access log, HTTP metrics and spans, `/metrics`.

Each request gets an id — the caller's `X-Request-ID` if it is a UUID, else a new one —
named in every log line logged while it is handled and returned as `X-Request-ID`. The
access log says method, route template, status and duration: never the path as sent
(it may carry ids a route treats as secret-adjacent), a query string or a body.

A request that meets an exception nobody handled is answered 500 problem+json here, and
logged once with its type and stack (shared.observability.logs): it never reaches the
server, which would log the exception's message.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import probes
from shared.http.problems import problem_response
from shared.observability import context, tracing

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")  # as Starlette appends it
# FastAPI's own (experimental) telemetry, off: its server span records the query string,
# its log records exception messages. `RequestObservation` makes the server spans here.
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
HTTP_DURATION = "portal_mfa_http_request_duration_seconds"
# From a fast challenge (a few ms) to a password step (argon2id, ~100 ms) under load.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

access_log = logging.getLogger("portal_mfa.access")
# Probes and scrapes come every few seconds from machines: their lines only at DEBUG.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
log = logging.getLogger(__name__)


def observe(app: FastAPI, service: str, registry: CollectorRegistry | None = None) -> None:
    """Instrument `app`; its own metrics go to `registry` (app.state.metrics), served with
    the process's at `/metrics`. Call it after the app's other middleware: it is outermost."""
    own = registry or CollectorRegistry()
    app.state.metrics = own
    Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=["/metrics"],
        registry=own,
    ).add(
        metrics.latency(
            metric_name=HTTP_DURATION,
            metric_doc="HTTP requests by route template, method and status",
            buckets=_BUCKETS,
            registry=own,
        )
    ).instrument(app)
    app.add_middleware(RequestObservation, service=service)

    @app.get("/metrics", **probes.METRICS)
    async def metrics_text() -> Response:
        # The process's (GC, process, dead letters, commands, logins), then this app's.
        text = generate_latest(REGISTRY) + generate_latest(own)
        return Response(text, media_type=CONTENT_TYPE_LATEST)


def request_id_from(scope: Scope) -> str:
    """The caller's request id if it is a UUID (normalised), else a fresh one: no free
    text from outside reaches a log line."""
    return _read_headers(scope["headers"])[0]


def _read_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """The request id (as `request_id_from`), and whether the caller sent a trace
    context: one pass over the headers for both."""
    rid: str | None = None
    traced = False
    for name, value in headers:
        if name == b"x-request-id" and rid is None:
            try:
                rid = str(uuid.UUID(value.decode("latin-1")))
            except ValueError:
                rid = _fresh_id()
        elif name == b"traceparent" or name == b"tracestate":
            traced = True
    return rid or _fresh_id(), traced


def _fresh_id() -> str:
    # uuid4's own recipe (16 random bytes, version 4, RFC 4122 variant) without building
    # a UUID object: half the CPU, and this runs once per request.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class RequestObservation:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, traced = _read_headers(scope["headers"])
        method = scope["method"]
        started = time.perf_counter()
        status = 500
        responded = False

        async def answer(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message["headers"], (_REQUEST_ID, rid.encode())]
            await send(message)

        # A server span only where it goes somewhere: spans are exported, or the caller
        # sent a trace (the no-op API then carries it, and log lines name it). Otherwise
        # the span would be the API's no-op and cost ~5 µs a request for nothing.
        server_span: AbstractContextManager[trace.Span | None] = (
            tracing.span(
                method, kind=SpanKind.SERVER, parent=tracing.context_from(scope["headers"])
            )
            if traced or tracing.exporting()
            else nullcontext()
        )
        with context.http_request(rid, scope), server_span as span:
            try:
                await self.app(scope, receive, answer)
            except Exception as exc:
                log.error("unhandled %s", type(exc).__name__, exc_info=exc)
                if span is not None:
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                if responded:
                    raise
                await problem_response(500, "internal", "Something went wrong")(
                    scope, receive, answer
                )
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                took_ms = (time.perf_counter() - started) * 1000
                if span is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    span.set_attribute("portal_mfa.request_id", rid)
                access_log.log(
                    logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                    "%s %s %s %.1f ms",
                    method,
                    route,
                    status,
                    took_ms,
                    extra={
                        "http_method": method,
                        "http_route": route,
                        "http_status": status,
                        "duration_ms": round(took_ms, 1),
                    },
                )


def outgoing_headers() -> dict[str, str]:
    """For a call to another service while handling a request: the same request id and
    the current trace, so both sides' log lines and spans name one request."""
    headers = {name: value.decode() for name, value in tracing.trace_headers()}
    rid = context.request_id()
    if rid is not None:
        headers[REQUEST_ID_HEADER] = rid
    return headers

"""The log lines an app writes under the production format, read as an operator reads them.

The attacker's angle: a request whose values end up in an exception's message (the leak
seen in the field: `ValueError: otp=123456` in uvicorn's traceback). Whatever the app
raises, the log says its type and where, never its text.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from shared.http.problems import install_problem_handlers
from shared.observability import tracing
from shared.observability.http import observe
from shared.observability.logs import configure_logging

OTP = "493817"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The process's log, as configured for production, into a buffer."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    configure_logging("unit", "json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def app_that_fails() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    observe(app, "unit", CollectorRegistry())

    @app.post("/v1/portals/{org_id}/boom")
    async def boom(org_id: str, body: dict[str, str]) -> None:
        # A bug that quotes what it was given, as the one seen in the field did.
        raise ValueError(f"otp={body['otp']} password={body['password']}")

    @app.get("/v1/portals/{org_id}/fine")
    async def fine(org_id: str) -> dict[str, str]:
        logging.getLogger("unit.handler").info("handled")
        return {"ok": "yes"}

    return app


async def call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def test_an_unexpected_exception_is_logged_by_type_and_stack_never_its_text(
    log_lines: io.StringIO,
) -> None:
    answer = await call(
        app_that_fails(),
        "POST",
        "/v1/portals/acme/boom?otp=" + OTP,
        json={"otp": OTP, "password": PASSWORD},
    )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    request_id = answer.headers["x-request-id"]
    text = log_lines.getvalue()
    assert OTP not in text and PASSWORD not in text
    logged = lines(log_lines)
    failure = next(line for line in logged if line["message"] == "unhandled ValueError")
    # The stack says where (this file, the route) and what kind, with the request's id.
    assert "ValueError" in str(failure["exc_info"])
    assert "in boom" in str(failure["exc_info"])
    assert failure["request_id"] == request_id
    assert failure["org_id"] == "acme"
    (access,) = [line for line in logged if line["logger"] == "portal_mfa.access"]
    assert str(access["message"]).startswith("POST /v1/portals/{org_id}/boom 500 ")
    assert access["http_status"] == 500 and access["request_id"] == request_id


async def test_a_chained_exception_keeps_its_types_and_loses_every_message(
    log_lines: io.StringIO,
) -> None:
    try:
        try:
            raise KeyError(f"backup code {OTP}")
        except KeyError as inner:
            raise RuntimeError(f"while checking {PASSWORD}") from inner
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    (line,) = lines(log_lines)
    stack = str(line["exc_info"])
    assert "KeyError" in stack and "RuntimeError" in stack and "direct cause" in stack
    assert OTP not in stack and PASSWORD not in stack


async def test_one_access_line_per_request_with_its_id_and_no_query_string(
    log_lines: io.StringIO,
) -> None:
    sent = str(uuid.uuid4())
    answer = await call(
        app_that_fails(), "GET", f"/v1/portals/acme/fine?otp={OTP}", headers={"X-Request-ID": sent}
    )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == sent
    logged = lines(log_lines)
    handled = next(line for line in logged if line["message"] == "handled")
    (access,) = [line for line in logged if line["logger"] == "portal_mfa.access"]
    assert handled["request_id"] == access["request_id"] == sent
    assert handled["correlation_id"] == sent and handled["org_id"] == "acme"
    assert access["http_route"] == "/v1/portals/{org_id}/fine"
    assert access["http_method"] == "GET" and access["http_status"] == 200
    for key in ("timestamp", "level", "logger", "message", "service"):
        assert key in access
    assert OTP not in log_lines.getvalue()


@pytest.mark.parametrize("sent", ["not-a-uuid", "x" * 300, "eyJhbGciOi.e30.sig"])
async def test_a_request_id_that_is_not_a_uuid_is_replaced(
    log_lines: io.StringIO, sent: str
) -> None:
    answer = await call(
        app_that_fails(), "GET", "/v1/portals/acme/fine", headers={"X-Request-ID": sent}
    )
    returned = answer.headers["x-request-id"]
    assert returned != sent and str(uuid.UUID(returned)) == returned
    assert sent not in log_lines.getvalue()


async def test_http_duration_is_labelled_by_route_template_and_status() -> None:
    registry = CollectorRegistry()
    app = FastAPI()
    observe(app, "unit", registry)

    @app.get("/v1/portals/{org_id}/fine")
    async def fine(org_id: str) -> dict[str, str]:
        return {}

    await call(app, "GET", "/v1/portals/one/fine")
    await call(app, "GET", "/v1/portals/two/fine")
    await call(app, "GET", "/nowhere")
    count = registry.get_sample_value(
        "portal_mfa_http_request_duration_seconds_count",
        {"handler": "/v1/portals/{org_id}/fine", "method": "GET", "status": "200"},
    )
    assert count == 2
    # An unknown path is one series, whatever was asked.
    unmatched = registry.get_sample_value(
        "portal_mfa_http_request_duration_seconds_count",
        {"handler": "none", "method": "GET", "status": "404"},
    )
    assert unmatched == 1
    scraped = (await call(app, "GET", "/metrics")).text
    assert "portal_mfa_http_request_duration_seconds_bucket" in scraped
    assert "process_cpu_seconds_total" in scraped or "python_gc_objects_collected_total" in scraped


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_no_server_span_is_made_when_none_would_go_anywhere(
    log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing exports spans and the caller sent no trace: a span would be the API's no-op,
    # ~5 µs a request for nothing (docs/performance.md, the lookup's round).
    monkeypatch.setattr(tracing, "_exporting", False)
    made: list[str] = []
    real_span = tracing.span

    def counted(name: str, **kwargs: Any) -> Any:
        made.append(name)
        return real_span(name, **kwargs)

    monkeypatch.setattr(tracing, "span", counted)
    answer = await call(app_that_fails(), "GET", "/v1/portals/acme/fine")
    assert answer.status_code == 200 and made == []
    (access,) = [line for line in lines(log_lines) if line["logger"] == "portal_mfa.access"]
    assert access["request_id"] == answer.headers["x-request-id"]
    assert str(uuid.UUID(access["request_id"])) == access["request_id"]  # type: ignore[arg-type]
    assert uuid.UUID(answer.headers["x-request-id"]).version == 4
    assert access["trace_id"] is None

    # A caller's trace still makes one: its id is named in every line of the request.
    parent = f"00-{TRACE}-00f067aa0ba902b7-01"
    answer = await call(
        app_that_fails(), "GET", "/v1/portals/acme/fine", headers={"traceparent": parent}
    )
    assert made == ["GET"]
    rid = answer.headers["x-request-id"]
    logged = [line for line in lines(log_lines) if line["request_id"] == rid]
    assert [line["logger"] for line in logged] == ["unit.handler", "portal_mfa.access"]
    assert all(line["trace_id"] == TRACE for line in logged)

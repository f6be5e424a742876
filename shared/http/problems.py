"""Errors as `application/problem+json` (RFC 9457) with stable `type` URIs, for every service."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.admin_identity import AssertionRejected
from shared.read_your_writes import NotCaughtUp
from shared.readiness import RETRY_AFTER_S
from shared.transient import failure_name, is_transient_database_error

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://portal-mfa.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An error answer (RFC 9457): `type` is stable, `title` and `detail` are for people."""

    type: str
    title: str
    status: int
    detail: str | None = None


_MEANINGS = {
    400: "Refused: the request is well formed but cannot be done",
    401: "No valid credential (token, session or admin assertion)",
    403: "The admin assertion does not allow this",
    404: "No such resource",
    409: "Conflicts with the current state",
    413: "The request body is too large",
    422: "The request is malformed",
    429: "Too many attempts; Retry-After (seconds) says when, where that is known",
    503: "Temporarily unavailable (catching up, or the database is away); see Retry-After",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for the problems a route really answers with."""
    content = {PROBLEM_JSON: {"schema": Problem.model_json_schema()}}
    return {status: {"description": _MEANINGS[status], "content": content} for status in statuses}


def problem_response(status: int, kind: str, title: str, detail: str = "") -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    # Every 503 is temporary and says when to come back.
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# What a request meets while the database is away, restarting, or too busy to answer
# in time (a pool that cannot hand out a connection raises TimeoutError).
DATABASE_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def install_problem_handlers(app: FastAPI) -> None:
    """The answers every service gives alike: refused assertions, a database away,
    malformed requests, unknown routes, and the unexpected."""
    _document_malformed_requests(app)

    @app.exception_handler(AssertionRejected)
    async def _not_authorized(_: Request, exc: AssertionRejected) -> JSONResponse:
        # The detail names what is wrong with the assertion, never the token or its claims.
        if exc.kind == "unauthenticated":
            answer = problem_response(
                401, "unauthenticated", "An admin assertion is required", exc.message
            )
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        return problem_response(
            403, "forbidden", "The admin assertion does not allow this", exc.message
        )

    @app.exception_handler(NotCaughtUp)
    async def _not_caught_up(_: Request, exc: NotCaughtUp) -> JSONResponse:
        # Never the old answer: a reader who names a write sees it, or is told to come back.
        return problem_response(
            503,
            "not-caught-up",
            "This read has not yet applied the write it was asked to reflect; try again shortly",
            "the write named by min_position is not applied here yet",
        )

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # Fail closed, said clearly: a request that needed the database is refused as
        # temporarily unavailable, never answered from less than it needed.
        if not is_transient_database_error(exc):
            log.error("unhandled %s", failure_name(exc))
            return problem_response(500, "internal", "Something went wrong")
        # Debug only: during an outage every request lands here; /readyz names the cause.
        log.debug("database unavailable: %s", failure_name(exc))
        return problem_response(
            503, "unavailable", "The service is temporarily unavailable; try again shortly"
        )

    for failure in DATABASE_FAILURES:
        app.add_exception_handler(failure, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Log the type only: an exception's text may carry request values.
        log.error("unhandled %s", type(exc).__name__)
        return problem_response(500, "internal", "Something went wrong")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the fields, never echo the values: a body may hold a password or a code.
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) or "body" for e in exc.errors()})
        return problem_response(
            422, "invalid-request", "The request is malformed", "check: " + ", ".join(fields)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, kind, str(exc.detail))


def _document_malformed_requests(app: FastAPI) -> None:
    """FastAPI documents its own 422 body for every route with input; ours is a problem."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = problems(422)[422]
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

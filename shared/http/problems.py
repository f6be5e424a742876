"""Errors as `application/problem+json` (RFC 9457) with stable `type` URIs, for every service."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.admin_identity import AssertionRejected
from shared.readiness import RETRY_AFTER_S
from shared.transient import failure_name, is_transient_database_error

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://portal-mfa.dev/problems/"


def problem_response(status: int, kind: str, title: str, detail: str = "") -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    # Every 503 is temporary and says when to come back.
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


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

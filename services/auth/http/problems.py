"""Errors as `application/problem+json` (RFC 9457) with stable `type` URIs."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.auth.domain.gapless import HistoryIncomplete
from services.auth.flows.refusal import Refusal, history_incomplete
from shared.admin_identity import AssertionRejected

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://portal-mfa.dev/problems/"


def problem_response(status: int, kind: str, title: str, detail: str = "") -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> JSONResponse:
        return problem_response(exc.status, exc.kind, exc.title)

    @app.exception_handler(HistoryIncomplete)
    async def _incomplete(_: Request, exc: HistoryIncomplete) -> JSONResponse:
        refusal = history_incomplete()
        return problem_response(refusal.status, refusal.kind, refusal.title)

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

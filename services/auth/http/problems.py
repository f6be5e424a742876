"""auth's own refusals as problem+json, beside the answers every service gives."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from services.auth.adapters.decision_memory import DecisionMemory
from services.auth.flows.refusal import Refusal, history_incomplete
from shared.http import problems
from shared.login_rule.gapless import HistoryIncomplete


def install_problem_handlers(app: FastAPI) -> None:
    problems.install_problem_handlers(app)

    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> JSONResponse:
        answer = problems.problem_response(exc.status, exc.kind, exc.title)
        if exc.retry_after_s is not None:
            # RFC 9110 §10.2.3: delay-seconds. The portal says "try again in about N minutes".
            answer.headers["Retry-After"] = str(exc.retry_after_s)
        return answer

    @app.exception_handler(HistoryIncomplete)
    async def _incomplete(_: Request, exc: HistoryIncomplete) -> JSONResponse:
        refusal = history_incomplete()
        return problems.problem_response(refusal.status, refusal.kind, refusal.title)


def note_database_failures(app: FastAPI, memory: DecisionMemory) -> None:
    """Every database failure a request meets switches the lookup's memory off before
    it is answered (503): no lookup answers from memory once PostgreSQL is seen away."""
    for failure in problems.DATABASE_FAILURES:
        answer = app.exception_handlers[failure]

        async def noted(request: Request, exc: Exception, answer: Any = answer) -> Response:
            memory.failed("request", exc)
            response: Response = await answer(request, exc)
            return response

        app.exception_handlers[failure] = noted

"""auth's own refusals as problem+json, beside the answers every service gives."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.auth.domain.errors import Refusal, history_incomplete
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

"""auth's domain errors as problem+json, beside the answers every service gives.

The one place that knows which status and stable problem `type` each refusal becomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from services.auth.adapters.decision_memory import DecisionMemory
from services.auth.domain import errors
from shared.http import problems
from shared.login_rule.gapless import HistoryIncomplete


@dataclass(frozen=True)
class Problem:
    status: int
    kind: str
    title: str
    retry_after_s: int | None = None


_TOO_MANY = "Too many failed attempts; try again later"


def problem_for(refusal: errors.AuthRefusal | HistoryIncomplete) -> Problem:
    """The answer a refusal gets (`kind` is the stable part of the problem's `type`)."""
    match refusal:
        case errors.InvalidCredentials():
            return Problem(401, "invalid-credentials", "Email or password is wrong")
        case errors.InvalidToken(purpose=what):
            return Problem(
                401, f"invalid-{what}-token", f"The {what} token is unknown, used or expired"
            )
        case errors.NoSession():
            return Problem(401, "invalid-session", "No valid session")
        case errors.WrongCode():
            return Problem(401, "wrong-code", "That code is wrong or was already used")
        case errors.WrongEnrollmentCode():
            return Problem(400, "wrong-code", "That code is not valid; enter the current code")
        case errors.AlreadyEnrolled():
            return Problem(409, "already-enrolled", "MFA is already configured for this account")
        case errors.EnrollmentNotStarted():
            return Problem(409, "enrollment-not-started", "Start the enrollment first")
        case errors.EnrollmentNotVerified():
            return Problem(409, "enrollment-not-verified", "Verify a code before enabling MFA")
        case errors.WeakPassword(min_length=length):
            return Problem(400, "weak-password", f"The password needs at least {length} characters")
        case errors.InvalidInvitation():
            return Problem(400, "invalid-invitation", "The invitation is unknown, used or expired")
        case errors.NotReady():
            return Problem(503, "not-ready", "The service is catching up; try again shortly")
        case errors.TooManyAttempts():
            return Problem(429, "too-many-attempts", _TOO_MANY, refusal.retry_after_s)
        case errors.LockedOut():
            return Problem(429, "locked-out", _TOO_MANY, refusal.retry_after_s)
        case HistoryIncomplete():
            # Like not-ready, but for one contact: its stream waits for a missing version.
            return Problem(
                503,
                "history-incomplete",
                "This account's data is incomplete; try again shortly",
            )
    raise TypeError(f"no problem for {type(refusal).__name__}")


def install_problem_handlers(app: FastAPI) -> None:
    problems.install_problem_handlers(app)

    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.AuthRefusal | HistoryIncomplete)
        problem = problem_for(exc)
        answer = problems.problem_response(problem.status, problem.kind, problem.title)
        if problem.retry_after_s is not None:
            # RFC 9110 §10.2.3: delay-seconds. The portal says "try again in about N minutes".
            answer.headers["Retry-After"] = str(problem.retry_after_s)
        return answer

    app.add_exception_handler(errors.AuthRefusal, _refused)
    app.add_exception_handler(HistoryIncomplete, _refused)


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

"""The portal API of DESIGN.md §5: routes that read like the table, and nothing more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.auth.domain.errors import NoSession
from services.auth.entrypoints.http import answers
from services.auth.entrypoints.http.answers import (
    Authenticated,
    BackupCodes,
    ChallengePassed,
    CurrentSession,
    EnrollmentStarted,
    LoginAnswer,
)
from services.auth.entrypoints.http.dependencies import Runtime
from services.auth.flows import challenge, enrollment, login, sessions
from services.auth.flows.runtime import AuthRuntime
from shared.http.client_address import client_address
from shared.http.path_params import OrgId
from shared.http.problems import problems

router = APIRouter(prefix="/v1")

Token = Annotated[str, Field(min_length=16, max_length=256)]
Code = Annotated[str, Field(min_length=6, max_length=64)]
NO_STORE = {"Cache-Control": "no-store"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL; refuse it here as bad input, not deep down as a 500.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class AcceptInvitation(Body):
    token: Token
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Login(Body):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class EnrollmentToken(Body):
    enrollment_token: Token


class VerifyEnrollment(EnrollmentToken):
    otp: Code


class Challenge(Body):
    challenge_token: Token
    otp: Code | None = None
    backup_code: Code | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> Challenge:
        if (self.otp is None) == (self.backup_code is None):
            raise ValueError("send exactly one of otp, backup_code")
        return self


# A security scheme, so the OpenAPI document says which routes need a session.
# auto_error=False: a missing session is answered as our own problem, not FastAPI's 403.
_session_scheme = HTTPBearer(
    scheme_name="sessionToken", description="The session_token of a login", auto_error=False
)
SessionBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_session_scheme)]
# Every route with a body: unreadable (400), too large (413) or malformed (422) is refused,
# and each reads the database and the projection (503 while either is away).
_WITH_BODY = (400, 413, 422, 503)


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise NoSession()
    return token


def _client_address(runtime: AuthRuntime, request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    # Every X-Forwarded-For header, in order: a proxy may add its own rather than append.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    return client_address(peer, forwarded, runtime.trusted_proxies)


@router.post(
    "/portals/{org_id}/invitations/accept",
    status_code=204,
    responses=problems(429, *_WITH_BODY),
)
async def accept_invitation(
    runtime: Runtime, org_id: OrgId, body: AcceptInvitation, request: Request
) -> Response:
    address = _client_address(runtime, request)
    await login.accept_invitation(runtime, org_id, body.token, body.password, address)
    return Response(status_code=204)


@router.post(
    "/portals/{org_id}/login",
    responses={200: {"model": LoginAnswer}, **problems(401, 429, *_WITH_BODY)},
)
async def log_in(
    runtime: Runtime, org_id: OrgId, body: Login, request: Request, response: Response
) -> Any:
    response.headers.update(NO_STORE)  # it may carry a session or a one-time token
    address = _client_address(runtime, request)
    return answers.login_answer(
        await login.login(runtime, org_id, body.email, body.password, address)
    )


@router.post(
    "/mfa/enrollment/start",
    responses={200: {"model": EnrollmentStarted}, **problems(401, 409, *_WITH_BODY)},
)
async def start_enrollment(runtime: Runtime, body: EnrollmentToken, response: Response) -> Any:
    response.headers.update(NO_STORE)
    return answers.enrollment_answer(await enrollment.start(runtime, body.enrollment_token))


@router.post(
    "/mfa/enrollment/verify",
    responses={200: {"model": BackupCodes}, **problems(401, 409, 429, *_WITH_BODY)},
)
async def verify_enrollment(runtime: Runtime, body: VerifyEnrollment, response: Response) -> Any:
    response.headers.update(NO_STORE)
    return {"backup_codes": await enrollment.verify(runtime, body.enrollment_token, body.otp)}


@router.post(
    "/mfa/enrollment/enable",
    responses={200: {"model": Authenticated}, **problems(401, 409, *_WITH_BODY)},
)
async def enable_enrollment(runtime: Runtime, body: EnrollmentToken, response: Response) -> Any:
    response.headers.update(NO_STORE)
    return answers.session_answer(await enrollment.enable(runtime, body.enrollment_token))


@router.post(
    "/mfa/challenge",
    responses={200: {"model": ChallengePassed}, **problems(401, 429, *_WITH_BODY)},
)
async def answer_challenge(runtime: Runtime, body: Challenge, response: Response) -> Any:
    response.headers.update(NO_STORE)
    passed = await challenge.answer(runtime, body.challenge_token, body.otp, body.backup_code)
    return answers.second_factor_answer(passed)


@router.get("/session", responses={200: {"model": CurrentSession}, **problems(401, 503)})
async def current_session(runtime: Runtime, session: SessionBearer) -> dict[str, Any]:
    return answers.session_view(await sessions.whoami(runtime, _bearer(session)))


@router.post("/logout", status_code=204, responses=problems(401, 503))
async def log_out(runtime: Runtime, session: SessionBearer) -> Response:
    await sessions.logout(runtime, _bearer(session))
    return Response(status_code=204)

"""The portal API's answers as the OpenAPI document declares them (DESIGN's API table),
and the flows' results written as those answers.

Declared, not enforced: the routes answer plain dicts, and the schemathesis run in the
test suite checks every answer it provokes against these, so the document cannot drift.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, Literal

import segno
from pydantic import BaseModel

from services.auth.domain import results


class Authenticated(BaseModel):
    status: Literal["authenticated"]
    session_token: str
    expires_at: datetime


class MfaRequired(BaseModel):
    status: Literal["mfa_required"]
    challenge_token: str


class MfaEnrollmentRequired(BaseModel):
    status: Literal["mfa_enrollment_required"]
    enrollment_token: str


# What the login step answers: one of three, told apart by `status`.
LoginAnswer = Authenticated | MfaRequired | MfaEnrollmentRequired


class EnrollmentStarted(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str
    qr_png_data_uri: str


class BackupCodes(BaseModel):
    backup_codes: list[str]


class ChallengePassed(Authenticated):
    backup_codes_remaining: int


class CurrentSession(BaseModel):
    org_id: str
    contact_id: str
    kind: Literal["customer", "vendor"]
    mfa: bool


def session_answer(session: results.Session) -> dict[str, Any]:
    return {
        "status": "authenticated",
        "session_token": session.token,
        "expires_at": session.expires_at.isoformat(),
    }


def login_answer(outcome: results.LoginOutcome) -> dict[str, Any]:
    match outcome:
        case results.MfaRequired(challenge_token=token):
            return {"status": "mfa_required", "challenge_token": token}
        case results.EnrollmentRequired(enrollment_token=token):
            return {"status": "mfa_enrollment_required", "enrollment_token": token}
        case results.Session():
            return session_answer(outcome)


def second_factor_answer(passed: results.SecondFactorPassed) -> dict[str, Any]:
    return {
        **session_answer(passed.session),
        "backup_codes_remaining": passed.backup_codes_remaining,
    }


def enrollment_answer(started: results.EnrollmentStarted) -> dict[str, Any]:
    """The key as text, as an otpauth URI, and as a QR code of that URI (SVG and PNG)."""
    qr = segno.make(started.otpauth_uri, error="m")
    svg = io.BytesIO()
    qr.save(svg, kind="svg", scale=4, xmldecl=True)
    return {
        "secret": started.secret,
        "otpauth_uri": started.otpauth_uri,
        "qr_svg": svg.getvalue().decode(),
        "qr_png_data_uri": qr.png_data_uri(scale=5),
    }


def session_view(current: results.CurrentSession) -> dict[str, Any]:
    return {
        "org_id": current.org_id,
        "contact_id": current.contact_id,
        "kind": current.kind,
        "mfa": current.mfa,
    }

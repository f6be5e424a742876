"""The portal API's answers as the OpenAPI document declares them (DESIGN's API table).

Declared, not enforced: the flows build plain dicts, and the schemathesis run in the test
suite checks every answer it provokes against these, so the document cannot drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


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

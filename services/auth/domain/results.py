"""What auth's flows answer, in its own words; the HTTP layer turns them into JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Factor = Literal["password", "totp", "backup_code"]


@dataclass(frozen=True)
class Session:
    """A session was issued: the login is complete."""

    token: str
    expires_at: datetime


@dataclass(frozen=True)
class MfaRequired:
    """The password was right; a second factor is next, against this challenge."""

    challenge_token: str


@dataclass(frozen=True)
class EnrollmentRequired:
    """The password was right; the org requires MFA and the contact has none yet."""

    enrollment_token: str


LoginOutcome = Session | MfaRequired | EnrollmentRequired


@dataclass(frozen=True)
class SecondFactorPassed:
    session: Session
    backup_codes_remaining: int


@dataclass(frozen=True)
class EnrollmentStarted:
    """The key to put into an authenticator app, as text and as an otpauth URI."""

    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class CurrentSession:
    org_id: str
    contact_id: str
    kind: str
    mfa: bool

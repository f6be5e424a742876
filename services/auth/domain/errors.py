"""Why a flow refuses: domain errors, raised by the flows and answered by the entrypoints.

They name what went wrong in auth's words; which status code and problem type each
becomes is the HTTP layer's business (`entrypoints/http/problems.py`).
"""

from __future__ import annotations

import math
from datetime import datetime

from services.auth.domain.lockout import MfaAttempts


class AuthRefusal(Exception):
    """A request auth refuses; `retry_after_s` when a retry can succeed, if that is known."""

    retry_after_s: int | None = None


class InvalidCredentials(AuthRefusal):
    """One answer for an unknown email and a wrong password: logins reveal no accounts."""


class InvalidToken(AuthRefusal):
    """A challenge or enrollment token that is unknown, used, expired, or no longer fits."""

    def __init__(self, purpose: str) -> None:
        super().__init__(purpose)
        self.purpose = purpose


class NoSession(AuthRefusal):
    pass


class WrongCode(AuthRefusal):
    """A second factor at login that is wrong or was already used."""


class WrongEnrollmentCode(AuthRefusal):
    """A code that does not confirm the authenticator being enrolled."""


class AlreadyEnrolled(AuthRefusal):
    """Only an admin's reset frees an enrolled contact to enroll again."""


class EnrollmentNotStarted(AuthRefusal):
    pass


class EnrollmentNotVerified(AuthRefusal):
    pass


class WeakPassword(AuthRefusal):
    def __init__(self, min_length: int) -> None:
        super().__init__(min_length)
        self.min_length = min_length


class InvalidInvitation(AuthRefusal):
    """An invitation that is unknown, used or expired."""


class NotReady(AuthRefusal):
    """The projection is catching up: with a stale one a login might skip a factor it needs."""


class TooManyAttempts(AuthRefusal):
    """The password step's attempt limit; `retry_after_s` when the full window ends."""

    def __init__(self, until: datetime | None, now: datetime) -> None:
        super().__init__()
        self.retry_after_s = seconds_until(until, now)


class LockedOut(AuthRefusal):
    """The second factor is locked (or its authenticator disabled)."""

    def __init__(self, attempts: MfaAttempts, now: datetime) -> None:
        super().__init__()
        # The wait is the lock's end; a disabled authenticator has none (an admin's reset is).
        self.retry_after_s = (
            None if attempts.disabled else seconds_until(attempts.locked_until, now)
        )


def seconds_until(until: datetime | None, now: datetime) -> int | None:
    """Whole seconds from `now` to `until`, rounded up (a retry at the answer's word must
    not arrive a fraction early); None when there is no such time or it has passed."""
    if until is None or until <= now:
        return None
    return max(1, math.ceil((until - now).total_seconds()))

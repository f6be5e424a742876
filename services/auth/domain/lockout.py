"""Second-factor lockout: 5 consecutive failures lock the MFA step, for longer each time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_CONSECUTIVE_FAILURES = 5
FIRST_LOCKOUT = timedelta(minutes=5)
LONGEST_LOCKOUT = timedelta(hours=24)


@dataclass(frozen=True)
class MfaAttempts:
    failures: int = 0
    lockouts: int = 0
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def after_failure(self, now: datetime) -> MfaAttempts:
        failures = self.failures + 1
        if failures < MAX_CONSECUTIVE_FAILURES:
            return MfaAttempts(failures, self.lockouts, self.locked_until)
        # Each lockout doubles the last one, so guessing stays hopeless but a user who
        # fumbled is back within minutes the first time.
        duration = min(FIRST_LOCKOUT * (2**self.lockouts), LONGEST_LOCKOUT)
        return MfaAttempts(0, self.lockouts + 1, now + duration)

    def after_success(self) -> MfaAttempts:
        return MfaAttempts(0, 0, None)


@dataclass(frozen=True)
class PasswordLimit:
    """At most `failures` failed passwords per `window` for one subject (contact or address)."""

    failures: int
    window: timedelta


PER_CONTACT = PasswordLimit(10, timedelta(minutes=15))
PER_CLIENT_ADDRESS = PasswordLimit(100, timedelta(minutes=15))

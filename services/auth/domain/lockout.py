"""Login limits: the second-factor lockout and the failed-password limits (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_CONSECUTIVE_FAILURES = 5
FIRST_LOCKOUT = timedelta(minutes=5)
LONGEST_LOCKOUT = timedelta(hours=24)
# The back-off starts over only after this long without a lockout, never on a success: a
# success between lockouts (the real user, or an attacker who also holds a code) would
# otherwise hand out a fresh 5-minute lock, and with it five more guesses, every time.
BACKOFF_FORGOTTEN_AFTER = timedelta(hours=24)
# So many second-factor failures without a success disable the authenticator for good:
# only an admin's reset (a new enrollment) brings the contact back.
DISABLE_AFTER_FAILURES = 100


@dataclass(frozen=True)
class MfaAttempts:
    failures: int = 0
    lockouts: int = 0
    locked_until: datetime | None = None
    failures_since_success: int = 0
    disabled: bool = False

    def is_locked(self, now: datetime) -> bool:
        return self.disabled or (self.locked_until is not None and now < self.locked_until)

    def after_failure(self, now: datetime) -> MfaAttempts:
        since_success = self.failures_since_success + 1
        if since_success >= DISABLE_AFTER_FAILURES:
            return MfaAttempts(0, self.lockouts, self.locked_until, since_success, disabled=True)
        failures = self.failures + 1
        if failures < MAX_CONSECUTIVE_FAILURES:
            return MfaAttempts(failures, self.lockouts, self.locked_until, since_success)
        lockouts = self.lockouts
        if self.locked_until is not None and self.locked_until + BACKOFF_FORGOTTEN_AFTER <= now:
            lockouts = 0  # a long quiet spell: the next fumble is a short lock again
        # Each lockout doubles the last one, so guessing stays hopeless but a user who
        # fumbled is back within minutes the first time.
        duration = min(FIRST_LOCKOUT * (2**lockouts), LONGEST_LOCKOUT)
        return MfaAttempts(0, lockouts + 1, now + duration, since_success)

    def after_success(self) -> MfaAttempts:
        # The lockout count (the back-off) stays: see BACKOFF_FORGOTTEN_AFTER.
        return MfaAttempts(0, self.lockouts, self.locked_until, 0)

    def newly_disabled(self, before: MfaAttempts) -> bool:
        return self.disabled and not before.disabled


UNLOCKED = MfaAttempts()


@dataclass(frozen=True)
class PasswordLimit:
    """At most `attempts` unsuccessful logins per `window` for one subject."""

    attempts: int
    window: timedelta


# Limits are checked in this order; an attempt over any of them counts toward none.
# One address guessing one contact's password: the tight limit. An attacker elsewhere
# cannot spend it, so the real user is never locked out by a stranger's guesses.
PER_CONTACT_AND_ADDRESS = PasswordLimit(10, timedelta(minutes=15))
# One address across all contacts (password spraying).
PER_CLIENT_ADDRESS = PasswordLimit(100, timedelta(minutes=15))
# One contact from all addresses: a ceiling only a distributed attack reaches (at most 10
# attempts per address count toward it, so it takes 30 addresses within 15 minutes).
PER_CONTACT = PasswordLimit(300, timedelta(minutes=15))
# Invitation acceptance, per address: a token is 256 random bits, so this only stops
# a flood of password hashing.
INVITATIONS_PER_CLIENT_ADDRESS = PasswordLimit(30, timedelta(minutes=15))

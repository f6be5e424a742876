"""A flow's refusal: what the HTTP layer turns into problem+json (stable `kind`)."""

from __future__ import annotations

import math
from datetime import datetime

from services.auth.domain.lockout import MfaAttempts


class Refusal(Exception):
    def __init__(
        self, status: int, kind: str, title: str, retry_after_s: int | None = None
    ) -> None:
        super().__init__(title)
        self.status = status
        self.kind = kind
        self.title = title
        # When a retry can succeed, if that is known: the answer's `Retry-After` (seconds).
        self.retry_after_s = retry_after_s


def seconds_until(until: datetime | None, now: datetime) -> int | None:
    """Whole seconds from `now` to `until`, rounded up (a retry at the answer's word must
    not arrive a fraction early); None when there is no such time or it has passed."""
    if until is None or until <= now:
        return None
    return max(1, math.ceil((until - now).total_seconds()))


def invalid_credentials() -> Refusal:
    # One answer for an unknown email and a wrong password: logins reveal no accounts.
    return Refusal(401, "invalid-credentials", "Email or password is wrong")


def not_ready() -> Refusal:
    return Refusal(503, "not-ready", "The service is catching up; try again shortly")


def history_incomplete() -> Refusal:
    # Like not-ready, but for one contact: events of its stream wait for a missing version.
    return Refusal(
        503, "history-incomplete", "This account's data is incomplete; try again shortly"
    )


def locked_out(attempts: MfaAttempts, now: datetime) -> Refusal:
    # The wait is the lock's end; a disabled authenticator has none (an admin's reset is).
    wait = None if attempts.disabled else seconds_until(attempts.locked_until, now)
    return Refusal(429, "locked-out", "Too many failed attempts; try again later", wait)


def invalid_token(what: str) -> Refusal:
    return Refusal(401, f"invalid-{what}-token", f"The {what} token is unknown, used or expired")

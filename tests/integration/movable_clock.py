"""A clock the integration tests of auth's use cases move by hand (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.auth.domain import totp

# Ten seconds into a time step, in a year no real clock of this run shows.
START = datetime(2031, 3, 4, 12, 0, 10, tzinfo=UTC)
STEP = timedelta(seconds=totp.TIME_STEP_SECONDS)


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def wrong_code(secret: str, at: datetime) -> str:
    """A code no step of the window around `at` matches."""
    window = {totp.code_at(secret, at + d * STEP) for d in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in window)

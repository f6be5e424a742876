"""The dev supervisor's restart back-off: grows while a service keeps dying, resets after."""

from __future__ import annotations

from portal_mfa.dev_supervisor import (
    FIRST_RESTART_S,
    MAX_RESTART_S,
    STABLE_AFTER_S,
    RestartSchedule,
)


def test_back_off_doubles_up_to_the_cap_with_jitter() -> None:
    schedule = RestartSchedule(started_at=0.0)
    delays = [schedule.next_delay(now=1.0) for _ in range(12)]
    assert FIRST_RESTART_S * 0.8 <= delays[0] <= FIRST_RESTART_S * 1.2
    assert delays[3] > delays[0] * 4
    assert max(delays) <= MAX_RESTART_S * 1.2
    assert delays[-1] >= MAX_RESTART_S * 0.8


def test_a_service_that_stayed_up_restarts_fast_again() -> None:
    schedule = RestartSchedule(started_at=0.0)
    for _ in range(8):
        schedule.next_delay(now=1.0)
    schedule.started_at = 100.0
    assert schedule.next_delay(now=100.0 + STABLE_AFTER_S) <= FIRST_RESTART_S * 1.2

"""The second-factor lockout rules (no I/O): back-off, its memory, and disabling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.auth.domain.lockout import (
    BACKOFF_FORGOTTEN_AFTER,
    DISABLE_AFTER_FAILURES,
    FIRST_LOCKOUT,
    LONGEST_LOCKOUT,
    MAX_CONSECUTIVE_FAILURES,
    PER_CLIENT_ADDRESS,
    PER_CONTACT,
    PER_CONTACT_AND_ADDRESS,
    MfaAttempts,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fail(attempts: MfaAttempts, times: int, now: datetime) -> MfaAttempts:
    for _ in range(times):
        attempts = attempts.after_failure(now)
    return attempts


def test_five_failures_lock_for_five_minutes() -> None:
    attempts = fail(MfaAttempts(), MAX_CONSECUTIVE_FAILURES - 1, T0)
    assert not attempts.is_locked(T0)
    attempts = attempts.after_failure(T0)
    assert attempts.is_locked(T0)
    assert attempts.locked_until == T0 + FIRST_LOCKOUT
    assert not attempts.is_locked(T0 + FIRST_LOCKOUT)


def test_a_success_does_not_restart_the_back_off() -> None:
    """An attacker who also gets a code through now and then (or a user logging in
    between his bursts) must not win a fresh 5-minute lock, and five guesses, each time."""
    attempts, now = MfaAttempts(), T0
    durations = []
    for _ in range(4):
        attempts = fail(attempts, MAX_CONSECUTIVE_FAILURES, now)
        assert attempts.locked_until is not None
        durations.append(attempts.locked_until - now)
        now = attempts.locked_until
        attempts = attempts.after_success()
    assert durations == [FIRST_LOCKOUT * 2**i for i in range(4)]


def test_the_back_off_is_capped_and_forgotten_after_a_quiet_day() -> None:
    attempts, now = MfaAttempts(), T0
    durations = []
    for _ in range(12):
        attempts = fail(attempts, MAX_CONSECUTIVE_FAILURES, now)
        assert attempts.locked_until is not None
        durations.append(attempts.locked_until - now)
        now = attempts.locked_until
    assert max(durations) == durations[-1] == LONGEST_LOCKOUT
    later = now + BACKOFF_FORGOTTEN_AFTER
    fresh = fail(attempts.after_success(), MAX_CONSECUTIVE_FAILURES, later)
    assert fresh.locked_until == later + FIRST_LOCKOUT


def test_a_patient_attacker_gets_few_guesses_a_day() -> None:
    attempts, now, guesses = MfaAttempts(), T0, 0
    while now < T0 + timedelta(days=1) and not attempts.disabled:
        if attempts.is_locked(now):
            assert attempts.locked_until is not None
            now = attempts.locked_until
            continue
        attempts = attempts.after_failure(now)
        guesses += 1
    assert guesses <= 45


def test_a_hundred_failures_without_a_success_disable_the_authenticator() -> None:
    attempts, now = MfaAttempts(), T0
    for _ in range(DISABLE_AFTER_FAILURES - 1):
        if attempts.locked_until is not None:
            now = max(now, attempts.locked_until)
        attempts = attempts.after_failure(now)
    assert not attempts.disabled
    disabled = attempts.after_failure(now)
    assert disabled.disabled and disabled.newly_disabled(attempts)
    assert disabled.failures_since_success == DISABLE_AFTER_FAILURES
    # For good: no amount of waiting and no success lifts it (only a reset does).
    assert disabled.is_locked(now + timedelta(days=365))
    assert not disabled.after_failure(now).newly_disabled(disabled)


def test_a_success_restarts_the_count_toward_disabling() -> None:
    attempts = fail(MfaAttempts(), 4, T0).after_success()
    assert attempts.failures == 0 and attempts.failures_since_success == 0


def test_the_password_limits_leave_the_real_user_room() -> None:
    # A stranger's address spends its own (contact, address) budget long before the
    # contact's ceiling: reaching it takes this many addresses within one window.
    assert PER_CONTACT.attempts // PER_CONTACT_AND_ADDRESS.attempts >= 30
    assert PER_CLIENT_ADDRESS.attempts > PER_CONTACT_AND_ADDRESS.attempts

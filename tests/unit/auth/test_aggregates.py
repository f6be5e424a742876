"""auth's `Account` and `Enrollment` aggregates, with no I/O: what their events make of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.auth.domain.account import Account
from services.auth.domain.enrollment import Enrollment, current, fold
from services.auth.domain.lockout import FIRST_LOCKOUT, MAX_CONSECUTIVE_FAILURES, UNLOCKED
from shared.contracts import (
    Cause,
    ContactLockedOut,
    EnrollmentRef,
    LoginFailed,
    LoginFailedPayload,
    LoginSucceeded,
    LoginSucceededPayload,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaEnrollmentInvalidated,
    MfaEnrollmentInvalidatedPayload,
    MfaEnrollmentStarted,
    MfaEnrollmentVerified,
)
from shared.login_rule.projected import ProjectedContact

AT = datetime(2031, 1, 1, tzinfo=UTC)


def cause(after: timedelta = timedelta(0)) -> Cause:
    return Cause(actor="c-1", at=AT + after)


def test_recorded_events_fold_back_to_the_same_account() -> None:
    account = Account("c-1", "acme")
    locked = [
        account.second_factor_failed("wrong_otp", cause(timedelta(seconds=n)))
        for n in range(MAX_CONSECUTIVE_FAILURES)
    ]
    # Only the failure that locks says so (its events are published at once).
    assert locked == [False] * (MAX_CONSECUTIVE_FAILURES - 1) + [True]
    assert [type(e) for e in account.pending][-2:] == [LoginFailed, ContactLockedOut]
    assert account.attempts.locked_until == AT + timedelta(seconds=4) + FIRST_LOCKOUT
    account.lift_lockout("unlock", cause(timedelta(minutes=1)))
    folded = Account.folded("c-1", "acme", account.pending)
    assert (folded.version, folded.attempts) == (len(account.pending), account.attempts)
    assert not folded.attempts.is_locked(AT + timedelta(minutes=1))
    assert folded.attempts.failures_since_success == MAX_CONSECUTIVE_FAILURES


def test_a_wrong_password_is_no_second_factor_failure() -> None:
    account = Account("c-1", "acme")
    account.record(LoginFailed, LoginFailedPayload(reason="wrong_password"), cause())
    account.record(LoginFailed, LoginFailedPayload(reason="mfa_locked"), cause())
    assert account.attempts == UNLOCKED


def test_a_second_factor_success_starts_the_count_over_a_password_alone_does_not() -> None:
    account = Account("c-1", "acme")
    account.second_factor_failed("reused_otp", cause())
    account.record(LoginSucceeded, LoginSucceededPayload(factors=["password"]), cause())
    assert account.attempts.failures == 1
    account.record(LoginSucceeded, LoginSucceededPayload(factors=["password", "totp"]), cause())
    assert account.attempts.failures == account.attempts.failures_since_success == 0


def test_nothing_to_lift_records_nothing() -> None:
    account = Account("c-1", "acme")
    account.lift_lockout("reset", cause())
    assert account.pending == []


def _event(cls: type, payload: object, version: int) -> object:
    return cls.new(
        org_id="acme", aggregate_id="c-1", aggregate_version=version, payload=payload, cause=cause()
    )


def test_enabling_one_enrollment_replaces_the_others() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [
        _event(MfaEnrollmentStarted, EnrollmentRef(enrollment_id=a), 1),
        _event(MfaEnrollmentStarted, EnrollmentRef(enrollment_id=b), 2),
        _event(MfaEnrollmentVerified, EnrollmentRef(enrollment_id=a), 3),
        _event(MfaEnrolled, MfaEnrolledPayload(enrollment_id=a, mfa_epoch=2), 4),
    ]
    found = {e.enrollment_id: e for e in fold("c-1", "acme", events)}  # type: ignore[arg-type]
    assert (found[a].status, found[a].mfa_epoch, found[b].status) == ("enabled", 2, "invalidated")
    assert current(found.values()) == found[a]
    ended = _event(
        MfaEnrollmentInvalidated, MfaEnrollmentInvalidatedPayload(enrollment_id=a, by_epoch=3), 5
    )
    assert current(fold("c-1", "acme", [*events, ended])) is None  # type: ignore[list-item]


def test_the_one_active_rule_follows_the_epochs() -> None:
    enabled = Enrollment(uuid.uuid4(), "c-1", "acme", "enabled", 1, uuid.uuid4(), AT)
    contact = ProjectedContact("c-1", "acme", mfa_epoch=1)
    assert enabled.is_active(contact)
    reset = ProjectedContact("c-1", "acme", mfa_epoch=2)
    assert not enabled.is_active(reset) and enabled.ends_with_reset(2)
    assert not enabled.is_active(None)
    pending = Enrollment(uuid.uuid4(), "c-1", "acme", "pending", 2)
    assert not pending.is_active(reset) and pending.can_verify and not pending.can_enable

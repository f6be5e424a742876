"""Counting second-factor failures toward the lockout, with the events that record them."""

from __future__ import annotations

from services.auth.adapters.accounts import Account
from services.auth.runtime import AuthRuntime
from shared.contracts import (
    ContactLockedOut,
    ContactLockedOutPayload,
    LoginFailed,
    LoginFailedPayload,
    MfaAuthenticatorDisabled,
    MfaAuthenticatorDisabledPayload,
)


def record_failure(rt: AuthRuntime, account: Account, reason: str) -> None:
    now = rt.clock()
    before = account.attempts
    was_locked = before.is_locked(now)
    account.attempts = before.after_failure(now)
    cause = rt.cause(account.contact_id)
    account.record(LoginFailed, LoginFailedPayload(reason=reason), cause)
    if account.attempts.newly_disabled(before):
        failures = account.attempts.failures_since_success
        payload = MfaAuthenticatorDisabledPayload(failures=failures)
        account.record(MfaAuthenticatorDisabled, payload, cause)
        return
    until = account.attempts.locked_until
    if not was_locked and until is not None and account.attempts.is_locked(now):
        account.record(ContactLockedOut, ContactLockedOutPayload(until=until), cause)

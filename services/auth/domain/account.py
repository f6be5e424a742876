"""The portal account: an event-sourced aggregate, one per contact (stream `portal_account`).

Its state is what its own events say, and nothing else: `record` appends an event and
applies it, and `folded` rebuilds the same state from the stored stream (DESIGN.md §4).
The `accounts` row is its snapshot, written with the events in one transaction.

The password hash is not state of the fold: no event may carry it (not even hashed), so
it lives only in the row, beside the snapshot, as the sealed TOTP secret does beside an
enrollment. A revoke destroys it there; the events keep only that a password was set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from services.auth.domain.lockout import UNLOCKED, MfaAttempts
from shared.contracts import (
    BackupCodesIssued,
    Cause,
    ContactLockedOut,
    ContactLockedOutPayload,
    EventEnvelope,
    LoginFailed,
    LoginFailedPayload,
    LoginSucceeded,
    MfaAuthenticatorDisabled,
    MfaAuthenticatorDisabledPayload,
    MfaLockoutLifted,
    MfaLockoutLiftedPayload,
    Payload,
)

# LoginFailed reasons that are second-factor failures (toward the lockout); a wrong
# password and a login refused while locked are counted elsewhere (password_attempts).
SECOND_FACTOR_FAILURES = frozenset({"wrong_otp", "reused_otp", "wrong_backup_code"})
LiftedBy = Literal["reset", "unlock"]


@dataclass
class Account:
    contact_id: str
    org_id: str
    # The version of the stored stream; recorded events follow it (see `next_version`).
    version: int = 0
    attempts: MfaAttempts = UNLOCKED
    # Row-only credential material, never folded (see the module's docstring).
    password_hash: str | None = None
    pending: list[EventEnvelope] = field(default_factory=list)

    @classmethod
    def folded(cls, contact_id: str, org_id: str, events: Iterable[EventEnvelope]) -> Account:
        """The account as its stored events leave it."""
        account = cls(contact_id, org_id)
        for event in events:
            account.evolve(event)
            account.version = event.aggregate_version
        return account

    def evolve(self, event: EventEnvelope) -> None:
        """Apply one of the account's events to its state (no version bookkeeping)."""
        match event:
            case LoginFailed(payload=failed) if failed.reason in SECOND_FACTOR_FAILURES:
                # The moment of the failure is the event's: a lock is measured from it.
                self.attempts = self.attempts.after_failure(event.occurred_at)
            case LoginSucceeded(payload=succeeded) if len(succeeded.factors) > 1:
                # A second factor was proven (TOTP or a backup code): the count starts over.
                self.attempts = self.attempts.after_success()
            case BackupCodesIssued():
                # Issued on a verified code: the enrollment's first proof of the factor.
                self.attempts = self.attempts.after_success()
            case MfaLockoutLifted(payload=lifted):
                self.attempts = _lifted(self.attempts, lifted.by)
            case _:
                pass

    def record(self, cls: type[EventEnvelope], payload: Payload, cause: Cause) -> EventEnvelope:
        event = cls.new(
            org_id=self.org_id,
            aggregate_id=self.contact_id,
            aggregate_version=self.version + len(self.pending) + 1,
            payload=payload,
            cause=cause,
        )
        self.pending.append(event)
        self.evolve(event)
        return event

    def second_factor_failed(self, reason: str, cause: Cause) -> bool:
        """A wrong or reused second factor: counted, and locked or disabled at the limits.
        True if this failure locked the second factor or disabled the authenticator."""
        assert reason in SECOND_FACTOR_FAILURES
        now = cause.at
        before = self.attempts
        self.record(LoginFailed, LoginFailedPayload(reason=reason), cause)
        if self.attempts.newly_disabled(before):
            failures = self.attempts.failures_since_success
            payload = MfaAuthenticatorDisabledPayload(failures=failures)
            self.record(MfaAuthenticatorDisabled, payload, cause)
            return True
        until = self.attempts.locked_until
        if not before.is_locked(now) and until is not None and self.attempts.is_locked(now):
            self.record(ContactLockedOut, ContactLockedOutPayload(until=until), cause)
            return True
        return False

    def lift_lockout(self, by: LiftedBy, cause: Cause) -> None:
        """An admin's reset or unlock; records nothing when there is nothing to lift."""
        if _lifted(self.attempts, by) != self.attempts:
            self.record(MfaLockoutLifted, MfaLockoutLiftedPayload(by=by), cause)


def _lifted(attempts: MfaAttempts, by: LiftedBy) -> MfaAttempts:
    # A reset starts the second factor over (a new enrollment): everything the old one
    # earned goes, a disabled authenticator included. An unlock keeps the disabled
    # authenticator (guessed at a hundred times: only a new enrollment is safe).
    if by == "reset":
        return UNLOCKED
    return MfaAttempts(0, 0, None, attempts.failures_since_success, attempts.disabled)

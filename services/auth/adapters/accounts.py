"""Portal accounts: password hash, second-factor attempts, and the account's event stream.

Every flow that changes an account first locks its row (`lock`), so concurrent requests
for one contact serialise here and the account's event versions stay gap-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from services.auth import account_metrics
from services.auth.domain.lockout import MfaAttempts
from shared.contracts import Cause, EventEnvelope, Payload
from shared.eventstore import append_events


@dataclass
class Account:
    contact_id: str
    org_id: str
    version: int
    password_hash: str | None
    attempts: MfaAttempts
    pending: list[EventEnvelope] = field(default_factory=list)

    def record(self, cls: type[EventEnvelope], payload: Payload, cause: Cause) -> EventEnvelope:
        event = cls.new(
            org_id=self.org_id,
            aggregate_id=self.contact_id,
            aggregate_version=self.version + len(self.pending) + 1,
            payload=payload,
            cause=cause,
        )
        self.pending.append(event)
        return event


async def lock(conn: asyncpg.Connection, contact_id: str, org_id: str) -> Account:
    """The account row, created if missing, locked until the transaction ends."""
    await conn.execute(
        "INSERT INTO accounts (contact_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        contact_id,
        org_id,
    )
    row = await conn.fetchrow(
        f"SELECT contact_id, org_id, version, password_hash, {_ATTEMPTS}"
        " FROM accounts WHERE contact_id = $1 FOR UPDATE",
        contact_id,
    )
    assert row is not None
    return Account(
        contact_id=row["contact_id"],
        org_id=row["org_id"],
        version=row["version"],
        password_hash=row["password_hash"],
        attempts=_attempts(row),
    )


_ATTEMPTS = "mfa_failures, mfa_lockouts, mfa_locked_until, mfa_failures_since_success, mfa_disabled"


def _attempts(row: asyncpg.Record) -> MfaAttempts:
    return MfaAttempts(
        row["mfa_failures"],
        row["mfa_lockouts"],
        row["mfa_locked_until"],
        row["mfa_failures_since_success"],
        row["mfa_disabled"],
    )


@dataclass(frozen=True)
class LoginCandidate:
    contact_id: str
    password_hash: str | None
    attempts: MfaAttempts


async def for_login(
    conn: asyncpg.Connection, contacts_table: str, org_id: str, email: str
) -> LoginCandidate | None:
    """The live contact with portal access for this email, with its password and lockout.

    One query whether or not the email is known, so the answer takes the same time.
    """
    row = await conn.fetchrow(
        f"SELECT c.contact_id, a.password_hash, {_ATTEMPTS_OR_NONE}"
        f" FROM {contacts_table} c LEFT JOIN accounts a ON a.contact_id = c.contact_id"
        " WHERE c.org_id = $1 AND c.email = $2 AND c.portal_access AND NOT c.deleted",
        org_id,
        email.lower(),
    )
    if row is None:
        return None
    return LoginCandidate(row["contact_id"], row["password_hash"], _attempts(row))


# An account row may not exist yet: its attempts are then the defaults.
_ATTEMPTS_OR_NONE = (
    "coalesce(a.mfa_failures, 0) AS mfa_failures, coalesce(a.mfa_lockouts, 0) AS mfa_lockouts,"
    " a.mfa_locked_until, coalesce(a.mfa_failures_since_success, 0)"
    " AS mfa_failures_since_success, coalesce(a.mfa_disabled, false) AS mfa_disabled"
)


async def save(conn: asyncpg.Connection, account: Account, *, wake_relay: bool = True) -> None:
    """Write the account's attempts and password, and append its recorded events."""
    await append_events(conn, account.pending, wake_relay=wake_relay)
    account_metrics.count(account.pending)
    account.version += len(account.pending)
    account.pending.clear()
    await conn.execute(
        "UPDATE accounts SET version = $2, password_hash = $3, mfa_failures = $4,"
        " mfa_lockouts = $5, mfa_locked_until = $6, mfa_failures_since_success = $7,"
        " mfa_disabled = $8 WHERE contact_id = $1",
        account.contact_id,
        account.version,
        account.password_hash,
        account.attempts.failures,
        account.attempts.lockouts,
        account.attempts.locked_until,
        account.attempts.failures_since_success,
        account.attempts.disabled,
    )

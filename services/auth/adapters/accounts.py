"""Portal accounts: password hash, second-factor attempts, and the account's event stream.

Every flow that changes an account first locks its row (`lock`), so concurrent requests
for one contact serialise here and the account's event versions stay gap-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.auth import account_metrics
from services.auth.domain.lockout import MfaAttempts
from shared.events import Cause, EventEnvelope, Payload
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
        "SELECT contact_id, org_id, version, password_hash, mfa_failures, mfa_lockouts,"
        " mfa_locked_until FROM accounts WHERE contact_id = $1 FOR UPDATE",
        contact_id,
    )
    assert row is not None
    return Account(
        contact_id=row["contact_id"],
        org_id=row["org_id"],
        version=row["version"],
        password_hash=row["password_hash"],
        attempts=MfaAttempts(row["mfa_failures"], row["mfa_lockouts"], row["mfa_locked_until"]),
    )


async def password_hash_of(conn: asyncpg.Connection, contact_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT password_hash FROM accounts WHERE contact_id = $1", contact_id
    )
    return found


async def mfa_locked_until(conn: asyncpg.Connection, contact_id: str) -> datetime | None:
    found: datetime | None = await conn.fetchval(
        "SELECT mfa_locked_until FROM accounts WHERE contact_id = $1", contact_id
    )
    return found


async def save(conn: asyncpg.Connection, account: Account) -> None:
    """Write the account's attempts and password, and append its recorded events."""
    await append_events(conn, account.pending)
    account_metrics.count(account.pending)
    account.version += len(account.pending)
    account.pending.clear()
    await conn.execute(
        "UPDATE accounts SET version = $2, password_hash = $3, mfa_failures = $4,"
        " mfa_lockouts = $5, mfa_locked_until = $6 WHERE contact_id = $1",
        account.contact_id,
        account.version,
        account.password_hash,
        account.attempts.failures,
        account.attempts.lockouts,
        account.attempts.locked_until,
    )

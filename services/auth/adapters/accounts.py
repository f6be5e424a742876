"""Portal accounts: the `Account` aggregate's events, its snapshot row and its password hash.

Every flow that changes an account first locks its row (`lock`), so concurrent requests
for one contact serialise here and the account's event versions stay gap-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from services.auth.adapters import account_metrics
from services.auth.domain.account import Account
from services.auth.domain.lockout import MfaAttempts
from shared.contracts import Event
from shared.eventstore import (
    OUTBOX_CHANNEL,
    ConcurrencyConflict,
    event_rows,
    load_stream,
    outbox_rows,
)


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
    return _account(row)


async def lock_existing(conn: asyncpg.Connection, contact_id: str) -> Account | None:
    """The account row if there is one, locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT contact_id, org_id, version, password_hash, {_ATTEMPTS}"
        " FROM accounts WHERE contact_id = $1 FOR UPDATE",
        contact_id,
    )
    return _account(row) if row is not None else None


async def events(conn: asyncpg.Connection, contact_id: str) -> list[Event]:
    """The account's stream, in version order (what `Account.folded` rebuilds it from)."""
    return await load_stream(conn, "portal_account", contact_id)


def _account(row: asyncpg.Record) -> Account:
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
    """Append the account's recorded events (with their outbox rows) and write its snapshot
    (and password hash), in one statement: all of it or none, as the event store's own
    savepoint made it, for one round trip where that took five (every login writes here)."""
    events = account.pending
    version = account.version + len(events)
    # The JSON columns as text, as the pool's jsonb codec would send them (shared.db): a
    # list in a jsonb[] parameter would be read as an array.
    rows = [(*row[:-1], json.dumps(row[-1])) for row in event_rows(events)]
    outbox = [(*row[:-1], json.dumps(row[-1])) for row in outbox_rows(events)]
    attempts = account.attempts
    try:
        await conn.execute(
            _SAVE,
            account.contact_id,
            version,
            account.password_hash,
            attempts.failures,
            attempts.lockouts,
            attempts.locked_until,
            attempts.failures_since_success,
            attempts.disabled,
            *_columns(rows, 9),
            *_columns(outbox, 4),
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name != "events":
            raise
        # As append_events says it: another writer took one of these account versions.
        raise ConcurrencyConflict(
            f"portal_account {account.contact_id} changed concurrently"
        ) from exc
    if events and wake_relay:
        await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    account_metrics.count(events)
    account.version = version
    events.clear()


def _columns(rows: list[tuple[object, ...]], width: int) -> list[list[object]]:
    # One array parameter per column, for unnest (empty ones when there are no rows).
    return [[row[i] for row in rows] for i in range(width)]


# The event store's inserts (shared.eventstore.append_events: same columns, the events in
# the order given) and the snapshot's update. Data-modifying WITH clauses always run, all
# in the statement's one snapshot; none of them reads what another writes.
_SAVE = (
    "WITH stored AS ("
    " INSERT INTO events (event_id, aggregate_type, aggregate_id, aggregate_version,"
    " event_type, schema_version, org_id, occurred_at, envelope)"
    " SELECT i, ty, a, v, et, sv, o, at, en::jsonb"
    " FROM unnest($9::uuid[], $10::text[], $11::text[], $12::integer[], $13::text[],"
    " $14::integer[], $15::text[], $16::timestamptz[], $17::text[])"
    " WITH ORDINALITY AS e(i, ty, a, v, et, sv, o, at, en, n) ORDER BY n),"
    " queued AS ("
    " INSERT INTO outbox (topic, key, value, headers)"
    " SELECT t, k, v, h::jsonb"
    " FROM unnest($18::text[], $19::bytea[], $20::bytea[], $21::text[])"
    " WITH ORDINALITY AS q(t, k, v, h, n) ORDER BY n)"
    " UPDATE accounts SET version = $2, password_hash = $3, mfa_failures = $4,"
    " mfa_lockouts = $5, mfa_locked_until = $6, mfa_failures_since_success = $7,"
    " mfa_disabled = $8 WHERE contact_id = $1"
)

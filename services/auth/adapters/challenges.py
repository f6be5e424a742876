"""The MFA challenge's statements, two round trips in all (schema.sql: `challenge_open`,
`challenge_passed`): what was ten to fifteen statements, each its own round trip, parse
and bind in asyncpg and PostgreSQL. The flow (services/auth/flows/challenge.py) keeps
every decision; these only read and write, in the order the separate statements did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

import asyncpg

from services.auth.adapters import account_metrics
from services.auth.adapters.projection import LIVE_SCHEMA, LoginProjection
from services.auth.adapters.tokens import Token
from services.auth.domain.account import Account
from services.auth.domain.enrollment import Enrollment
from services.auth.domain.lockout import MfaAttempts
from shared.eventstore import OUTBOX_CHANNEL, ConcurrencyConflict, event_rows, outbox_rows
from shared.login_rule.projected import ProjectedContact
from shared.tokens import hash_token


@dataclass(frozen=True)
class Opened:
    """A live challenge token (locked), its account (locked) and what the factor needs."""

    challenge: Token
    account: Account
    # The contact only if it is in the token's org; `contact_waiting`: its stream waits
    # beyond a version gap (the flow refuses to decide on it).
    contact: ProjectedContact | None
    contact_waiting: bool
    enrollment: Enrollment | None
    backup_codes_left: int
    # Of all the above but the backup codes; None without an account row (read unlocked).
    fingerprint: str | None


async def open_challenge(
    conn: asyncpg.Connection,
    projection: LoginProjection,
    token: str,
    now: datetime,
    *,
    lock: bool = True,
) -> Opened | None:
    """The live challenge token and the rest, locked (with `lock`) as tokens.find(lock=True)
    then accounts.lock lock them; None if the token is unknown, expired, used or not a
    challenge. Unlocked, outside a transaction: what `passed(read_as=…)` checks again."""
    if projection.schema != LIVE_SCHEMA:
        # `challenge_open` names the live schema; logins never read another one.
        raise ValueError(f"the challenge reads {LIVE_SCHEMA}, not {projection.schema}")
    token_hash = hash_token(token)
    row = await conn.fetchrow("SELECT * FROM challenge_open($1, $2, $3)", token_hash, now, lock)
    return None if row is None else _opened(row, token_hash)


async def open_challenges(
    conn: asyncpg.Connection,
    projection: LoginProjection,
    asked: Sequence[tuple[str, datetime]],
) -> list[Opened | None]:
    """`open_challenge(…, lock=False)` of each (token, now), in one statement: what a
    group of `passed_together` checks again."""
    if projection.schema != LIVE_SCHEMA:
        raise ValueError(f"the challenge reads {LIVE_SCHEMA}, not {projection.schema}")
    hashes = [hash_token(token) for token, _ in asked]
    rows = await conn.fetch(
        "SELECT t.n, o.* FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY"
        " AS t(h, at, n) CROSS JOIN LATERAL challenge_open(t.h, t.at, false) o",
        hashes,
        [now for _, now in asked],
    )
    opened: list[Opened | None] = [None] * len(asked)
    for row in rows:
        n = row["n"] - 1
        opened[n] = _opened(row, hashes[n], skip=1)
    return opened


def _opened(row: asyncpg.Record, token_hash: str, skip: int = 0) -> Opened:
    """`skip`: leading columns before challenge_open's own."""
    if row["account_version"] is None:  # read unlocked: no account row (yet)
        return _without_account(row, token_hash)
    challenge = Token(
        token_hash,
        "challenge",
        row["contact_id"],
        row["org_id"],
        row["token_enrollment_id"],
        row["token_mfa"],
        row["token_expires_at"],
    )
    account = Account(
        contact_id=row["contact_id"],
        org_id=row["org_id"],
        version=row["account_version"],
        password_hash=row["password_hash"],
        attempts=MfaAttempts(
            row["mfa_failures"],
            row["mfa_lockouts"],
            row["mfa_locked_until"],
            row["mfa_failures_since_success"],
            row["mfa_disabled"],
        ),
    )
    values = tuple(row)[skip:]
    contact = None
    if row["c_contact_id"] is not None:
        contact = ProjectedContact(*values[12:24])
    enrollment = None
    if row["e_enrollment_id"] is not None:
        enrollment = Enrollment(
            enrollment_id=row["e_enrollment_id"],
            contact_id=row["e_contact_id"],
            org_id=row["e_org_id"],
            status=row["e_status"],
            mfa_epoch=row["e_mfa_epoch"],
            enrolled_event_id=row["e_enrolled_event_id"],
            enabled_at=row["e_enabled_at"],
            secret_blob=row["e_secret_blob"],
        )
    return Opened(
        challenge,
        account,
        contact,
        bool(row["c_waiting"]),
        enrollment,
        row["backup_codes_left"] or 0,
        row["fingerprint"],
    )


def _without_account(row: asyncpg.Record, token_hash: str) -> Opened:
    """A token whose account row is missing, read unlocked: only the locked read decides."""
    challenge = Token(
        token_hash,
        "challenge",
        row["contact_id"],
        row["org_id"],
        row["token_enrollment_id"],
        row["token_mfa"],
        row["token_expires_at"],
    )
    account = Account(contact_id=row["contact_id"], org_id=row["org_id"])
    return Opened(challenge, account, None, False, None, 0, None)


class Claim(Enum):
    CHANGED = "changed"  # read unlocked, and not what the locked read finds: nothing written
    REPLAYED = "replayed"  # the time step was not later than the last accepted: nothing written
    TOKEN_USED = "token_used"  # noqa: S105 (not a secret) the step is claimed, the token was used meanwhile


@dataclass(frozen=True)
class Passing:
    """What `passed` writes for a proven factor, its rows made in the request's own task
    (the outbox rows carry its trace)."""

    opened: Opened
    account: Account  # with its recorded events: saved only if the step is claimed
    time_step: int | None  # None: a backup code, already spent
    session_hash: str
    session_expires_at: datetime
    now: datetime
    read_as: str | None  # `opened` was read unlocked: its fingerprint
    events: list[tuple[object, ...]]
    outbox: list[tuple[object, ...]]

    @property
    def version(self) -> int:
        return self.account.version + len(self.events)


def passing(
    opened: Opened,
    account: Account,
    *,
    time_step: int | None,
    session_token: str,
    session_expires_at: datetime,
    now: datetime,
    read_as: str | None = None,
) -> Passing:
    assert opened.enrollment is not None
    events = account.pending
    # The JSON columns as text, as the pool's jsonb codec would send them (shared.db).
    rows = [(*row[:-1], json.dumps(row[-1])) for row in event_rows(events)]
    outbox = [(*row[:-1], json.dumps(row[-1])) for row in outbox_rows(events)]
    return Passing(
        opened,
        account,
        time_step,
        hash_token(session_token),
        session_expires_at,
        now,
        read_as,
        rows,
        outbox,
    )


async def passed(conn: asyncpg.Connection, claim: Passing, *, wake_relay: bool) -> int | Claim:
    """Claim the time step, use the challenge token, issue the session and save the
    account with its recorded events, in one round trip. The backup codes left, or why
    nothing (or only the claim) was written.

    With `read_as` the call, outside a transaction, is one of its own that first locks and
    reads again, and writes only if it reads the same (else `Claim.CHANGED`). Many of
    those are `passed_together`."""
    assert claim.opened.enrollment is not None
    attempts = claim.account.attempts
    try:
        left = await conn.fetchval(
            "SELECT challenge_passed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
            " $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)",
            claim.opened.challenge.token_hash,
            claim.now,
            claim.opened.enrollment.enrollment_id,
            claim.time_step,
            claim.session_hash,
            claim.session_expires_at,
            claim.account.contact_id,
            claim.account.org_id,
            claim.version,
            attempts.failures,
            attempts.lockouts,
            attempts.locked_until,
            attempts.failures_since_success,
            attempts.disabled,
            *_columns(claim.events, 9),
            *_columns(claim.outbox, 4),
            OUTBOX_CHANNEL if wake_relay else None,
            claim.read_as,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name != "events":
            raise
        raise _conflict(claim) from exc
    return settled(claim, left)


async def passed_together(
    conn: asyncpg.Connection, claims: Sequence[Passing]
) -> list[int | Claim | ConcurrencyConflict]:
    """`passed` of each claim read unlocked (`read_as`), in one statement and one
    transaction, each item as if alone: its outcome, or the conflict `passed` raises.
    An item another transaction holds a lock of, or that failed otherwise, is
    `Claim.CHANGED` (nothing of it written: the locked path decides). `settled` then
    applies a written one to its account."""
    events: list[tuple[object, ...]] = []
    outbox: list[tuple[object, ...]] = []
    starts: list[int] = []
    ends: list[int] = []
    for claim in claims:
        assert claim.read_as is not None and claim.time_step is not None
        starts.append(len(events) + 1)
        events.extend(claim.events)
        outbox.extend(claim.outbox)
        ends.append(len(events))
    rows = await conn.fetch(
        "SELECT item, outcome, failure FROM challenge_passed_batch($1, $2, $3, $4, $5, $6,"
        " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,"
        " $23, $24, $25, $26, $27, $28, $29, $30)",
        [c.opened.challenge.token_hash for c in claims],
        [c.now for c in claims],
        [_enrollment_id(c) for c in claims],
        [c.time_step for c in claims],
        [c.session_hash for c in claims],
        [c.session_expires_at for c in claims],
        [c.account.contact_id for c in claims],
        [c.account.org_id for c in claims],
        [c.version for c in claims],
        [c.account.attempts.failures for c in claims],
        [c.account.attempts.lockouts for c in claims],
        [c.account.attempts.locked_until for c in claims],
        [c.account.attempts.failures_since_success for c in claims],
        [c.account.attempts.disabled for c in claims],
        [c.read_as for c in claims],
        starts,
        ends,
        *_columns(events, 9),
        *_columns(outbox, 4),
    )
    outcomes: list[int | Claim | ConcurrencyConflict] = [Claim.CHANGED] * len(claims)
    for row in rows:
        n = row["item"] - 1
        outcome = row["outcome"]
        if outcome == -3:
            outcomes[n] = _conflict(claims[n])
        else:
            outcomes[n] = _claim(outcome)
    return outcomes


def settled(claim: Passing, left: int | Claim | None) -> int | Claim:
    """The outcome of `claim` as written: its account moved to the saved version."""
    outcome = left if isinstance(left, Claim) else _claim(left)
    if isinstance(outcome, int):
        account_metrics.count(claim.account.pending)
        claim.account.version = claim.version
        claim.account.pending.clear()
    return outcome


def _claim(left: int | None) -> int | Claim:
    if left is None:
        return Claim.REPLAYED
    if left == -2:
        return Claim.CHANGED
    if left < 0:
        return Claim.TOKEN_USED
    return int(left)


def _conflict(claim: Passing) -> ConcurrencyConflict:
    # As append_events says it: another writer took one of these account versions.
    return ConcurrencyConflict(f"portal_account {claim.account.contact_id} changed concurrently")


def _enrollment_id(claim: Passing) -> object:
    assert claim.opened.enrollment is not None
    return claim.opened.enrollment.enrollment_id


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows as the lists of their columns (`width` of them, also without any row)."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def attempt_of(account: Account) -> Account:
    """A copy to record a passing attempt on: saved only if `passed` claims the step."""
    return replace(account, pending=list(account.pending))

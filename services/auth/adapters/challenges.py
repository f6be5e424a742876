"""The MFA challenge's statements, two round trips in all (schema.sql: `challenge_open`,
`challenge_passed`): what was ten to fifteen statements, each its own round trip, parse
and bind in asyncpg and PostgreSQL. The flow (services/auth/flows/challenge.py) keeps
every decision; these only read and write, in the order the separate statements did.
"""

from __future__ import annotations

import json
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
    if row is None:
        return None
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
    values = tuple(row)
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


async def passed(
    conn: asyncpg.Connection,
    opened: Opened,
    passing: Account,
    *,
    time_step: int | None,
    session_token: str,
    session_expires_at: datetime,
    now: datetime,
    wake_relay: bool,
    read_as: str | None = None,
) -> int | Claim:
    """Claim `time_step` (None: a backup code, already spent), use the challenge token,
    issue the session and save `passing` (the account with its recorded events), in one
    round trip. The backup codes left, or why nothing (or only the claim) was written.

    `read_as`: `opened` was read unlocked (its fingerprint); the call, outside a
    transaction, is then one of its own that first locks and reads again, and writes
    only if it reads the same (else `Claim.CHANGED`)."""
    assert opened.enrollment is not None
    events = passing.pending
    # The JSON columns as text, as the pool's jsonb codec would send them (shared.db).
    rows = [(*row[:-1], json.dumps(row[-1])) for row in event_rows(events)]
    outbox = [(*row[:-1], json.dumps(row[-1])) for row in outbox_rows(events)]
    attempts = passing.attempts
    version = passing.version + len(events)
    try:
        left = await conn.fetchval(
            "SELECT challenge_passed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
            " $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)",
            opened.challenge.token_hash,
            now,
            opened.enrollment.enrollment_id,
            time_step,
            hash_token(session_token),
            session_expires_at,
            passing.contact_id,
            passing.org_id,
            version,
            attempts.failures,
            attempts.lockouts,
            attempts.locked_until,
            attempts.failures_since_success,
            attempts.disabled,
            *(list(column) for column in zip(*rows, strict=True)),
            *(list(column) for column in zip(*outbox, strict=True)),
            OUTBOX_CHANNEL if wake_relay else None,
            read_as,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name != "events":
            raise
        # As append_events says it: another writer took one of these account versions.
        raise ConcurrencyConflict(
            f"portal_account {passing.contact_id} changed concurrently"
        ) from exc
    if left is None:
        return Claim.REPLAYED
    if left == -2:
        return Claim.CHANGED
    if left < 0:
        return Claim.TOKEN_USED
    account_metrics.count(events)
    passing.version = version
    passing.pending.clear()
    return int(left)


def attempt_of(account: Account) -> Account:
    """A copy to record a passing attempt on: saved only if `passed` claims the step."""
    return replace(account, pending=list(account.pending))

"""TOTP enrollments (the `Enrollment` snapshots), their backup codes, and the replay guard."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.auth.domain.enrollment import Enrollment

_COLUMNS = (
    "enrollment_id, contact_id, org_id, status, secret_blob, mfa_epoch, enrolled_event_id,"
    " enabled_at"
)


async def create(
    conn: asyncpg.Connection,
    enrollment_id: uuid.UUID,
    contact_id: str,
    org_id: str,
    secret_blob: bytes,
    mfa_epoch: int,
) -> None:
    await conn.execute(
        "INSERT INTO enrollments (enrollment_id, contact_id, org_id, status, secret_blob,"
        " mfa_epoch) VALUES ($1, $2, $3, 'pending', $4, $5)",
        enrollment_id,
        contact_id,
        org_id,
        secret_blob,
        mfa_epoch,
    )


async def get(conn: asyncpg.Connection, enrollment_id: uuid.UUID) -> Enrollment | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM enrollments WHERE enrollment_id = $1", enrollment_id
    )
    return Enrollment(**dict(row)) if row else None


async def enabled_for(conn: asyncpg.Connection, contact_id: str) -> Enrollment | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM enrollments WHERE contact_id = $1 AND status = 'enabled'"
        " ORDER BY enabled_at DESC LIMIT 1",
        contact_id,
    )
    return Enrollment(**dict(row)) if row else None


async def mark_verified(conn: asyncpg.Connection, enrollment_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE enrollments SET status = 'verified' WHERE enrollment_id = $1", enrollment_id
    )


async def enable(
    conn: asyncpg.Connection,
    enrollment: Enrollment,
    mfa_epoch: int,
    enrolled_event_id: uuid.UUID,
    now: datetime,
) -> list[uuid.UUID]:
    """Enable this enrollment; any other of the contact's is replaced (and shredded)."""
    replaced = await shred(
        conn,
        "contact_id = $1 AND enrollment_id <> $2 AND status <> 'invalidated'",
        enrollment.contact_id,
        enrollment.enrollment_id,
    )
    await conn.execute(
        "UPDATE enrollments SET status = 'enabled', mfa_epoch = $2, enrolled_event_id = $3,"
        " enabled_at = $4 WHERE enrollment_id = $1",
        enrollment.enrollment_id,
        mfa_epoch,
        enrolled_event_id,
        now,
    )
    return replaced


async def shred_every(conn: asyncpg.Connection, contact_id: str) -> list[uuid.UUID]:
    """Revoked or deleted: every enrollment of the contact that is not over yet."""
    return await shred(conn, "contact_id = $1 AND status <> 'invalidated'", contact_id)


async def shred_reset(conn: asyncpg.Connection, contact_id: str, epoch: int) -> list[uuid.UUID]:
    """A reset to `epoch`: the enrollments `Enrollment.ends_with_reset` names, in SQL."""
    return await shred(
        conn, "contact_id = $1 AND mfa_epoch < $2 AND status <> 'invalidated'", contact_id, epoch
    )


async def shred(conn: asyncpg.Connection, where: str, *args: object) -> list[uuid.UUID]:
    """Invalidate matching enrollments, destroying their secrets and backup codes."""
    rows = await conn.fetch(
        "UPDATE enrollments SET status = 'invalidated', secret_blob = NULL"
        f" WHERE {where} RETURNING enrollment_id",
        *args,
    )
    ids = [r["enrollment_id"] for r in rows]
    if ids:
        await conn.execute("DELETE FROM backup_codes WHERE enrollment_id = ANY($1::uuid[])", ids)
    return ids


async def replace_backup_codes(
    conn: asyncpg.Connection, enrollment_id: uuid.UUID, code_hashes: list[str]
) -> None:
    await conn.execute("DELETE FROM backup_codes WHERE enrollment_id = $1", enrollment_id)
    await conn.executemany(
        "INSERT INTO backup_codes (enrollment_id, code_hash) VALUES ($1, $2)",
        [(enrollment_id, h) for h in code_hashes],
    )


async def use_backup_code(
    conn: asyncpg.Connection, enrollment_id: uuid.UUID, code_hash: str, now: datetime
) -> int | None:
    """Spend a backup code; the number left, or None if it is unknown or already spent."""
    spent = await conn.execute(
        "UPDATE backup_codes SET used_at = $3"
        " WHERE enrollment_id = $1 AND code_hash = $2 AND used_at IS NULL",
        enrollment_id,
        code_hash,
        now,
    )
    if spent != "UPDATE 1":
        return None
    remaining: int = await conn.fetchval(
        "SELECT count(*) FROM backup_codes WHERE enrollment_id = $1 AND used_at IS NULL",
        enrollment_id,
    )
    return remaining


async def remaining_backup_codes(conn: asyncpg.Connection, enrollment_id: uuid.UUID) -> int:
    remaining: int = await conn.fetchval(
        "SELECT count(*) FROM backup_codes WHERE enrollment_id = $1 AND used_at IS NULL",
        enrollment_id,
    )
    return remaining


async def claim_time_step(conn: asyncpg.Connection, enrollment_id: uuid.UUID, step: int) -> bool:
    """True if `step` is later than every step accepted so far for this enrollment.

    Monotonic, not per step: once a code is used, no code of that step or an earlier one
    works (an unused older code may have been seen over a shoulder). One conditional
    UPDATE under the row's lock decides races: of parallel claims of one step, one wins.
    """
    claimed = await conn.fetchval(
        "UPDATE enrollments SET last_time_step = $2"
        " WHERE enrollment_id = $1 AND (last_time_step IS NULL OR last_time_step < $2)"
        " RETURNING true",
        enrollment_id,
        step,
    )
    return bool(claimed)


async def for_contact(conn: asyncpg.Connection, contact_id: str) -> list[Enrollment]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM enrollments WHERE contact_id = $1 ORDER BY created_at",
        contact_id,
    )
    return [Enrollment(**dict(row)) for row in rows]


async def count_sealed(conn: asyncpg.Connection) -> int:
    total: int = await conn.fetchval(
        "SELECT count(*) FROM enrollments WHERE secret_blob IS NOT NULL"
    )
    return total


async def lock_sealed_after(
    conn: asyncpg.Connection, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, bytes]]:
    """The next sealed secrets in enrollment_id order, locked until the transaction ends.

    Keyset pagination, so a rerun or a concurrent insert neither repeats nor skips a row;
    the row lock makes a concurrent enable or shred wait for this batch (never the reverse).
    """
    rows = await conn.fetch(
        "SELECT enrollment_id, secret_blob FROM enrollments"
        " WHERE secret_blob IS NOT NULL AND ($1::uuid IS NULL OR enrollment_id > $1)"
        " ORDER BY enrollment_id LIMIT $2 FOR UPDATE",
        after,
        limit,
    )
    return [(row["enrollment_id"], row["secret_blob"]) for row in rows]


async def replace_sealed_secrets(
    conn: asyncpg.Connection, resealed: list[tuple[uuid.UUID, bytes]]
) -> None:
    await conn.executemany(
        "UPDATE enrollments SET secret_blob = $2 WHERE enrollment_id = $1", resealed
    )

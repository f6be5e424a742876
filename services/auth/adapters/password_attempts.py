"""Attempt counters for the password step and invitations (fixed windows, in the database).

An attempt is reserved before the password is verified, in one call that counts it
against every subject or, if any is then over its limit, against none: each counter is
one upsert that returns its new value under the row's lock, so N parallel requests see N
different counts and no more than the limit are ever let through to a verify. A failed
attempt keeps its reservation (that is the count); a success gives it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.auth.domain.lockout import PasswordLimit


@dataclass(frozen=True)
class Subject:
    key: str
    limit: PasswordLimit
    # The login (org and email) this counter belongs to, so an admin's unlock finds it.
    login: str | None = None
    # A success clears it (the pair of contact and address); otherwise gives back one.
    cleared_on_success: bool = False


def login_key(org_id: str, email: str) -> str:
    return f"{org_id}:{email.lower()}"


async def reserve(conn: asyncpg.Connection, subjects: Sequence[Subject], now: datetime) -> bool:
    """Count one attempt against every subject, or none if one is at its limit (one call
    of schema.sql's `password_attempts_reserve`: all or none, in one round trip)."""
    counted: bool = await conn.fetchval(
        "SELECT password_attempts_reserve($1::text[], $2::text[], $3::integer[],"
        " $4::integer[], $5)",
        [s.key for s in subjects],
        [s.login for s in subjects],
        [int(s.limit.window.total_seconds()) for s in subjects],
        [s.limit.attempts for s in subjects],
        now,
    )
    return counted


async def blocked_until(
    conn: asyncpg.Connection, subjects: Sequence[Subject], now: datetime
) -> datetime | None:
    """After a refused reservation: when the last full window among `subjects` ends (an
    attempt then counts again), or None if none is full any more."""
    rows = await conn.fetch(
        "SELECT subject, failures, window_started + make_interval(secs => window_s) AS ends"
        " FROM password_attempts WHERE subject = ANY($1::text[])",
        [s.key for s in subjects],
    )
    limits = {s.key: s.limit.attempts for s in subjects}
    full = [row for row in rows if row["failures"] >= limits[row["subject"]]]
    ends = [row["ends"] for row in full if row["ends"] > now]
    return max(ends, default=None)


async def release(conn: asyncpg.Connection, subjects: Sequence[Subject]) -> None:
    """A success: the attempt was not a failure after all. One statement, so the rows'
    locks (an address's row is shared by all its logins) are held only for it."""
    await conn.execute(
        "WITH cleared AS (DELETE FROM password_attempts WHERE subject = ANY($1::text[]))"
        " UPDATE password_attempts SET failures = GREATEST(failures - 1, 0)"
        " WHERE subject = ANY($2::text[])",
        [s.key for s in subjects if s.cleared_on_success],
        [s.key for s in subjects if not s.cleared_on_success],
    )


async def clear_login(conn: asyncpg.Connection, login: str) -> None:
    """Every counter of one login (an admin's unlock); the address-wide ones stay."""
    await conn.execute("DELETE FROM password_attempts WHERE login_key = $1", login)

"""Failed-password counters per contact and per client address (fixed windows)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.auth.domain.lockout import PasswordLimit


async def over_limit(
    conn: asyncpg.Connection, subject: str, limit: PasswordLimit, now: datetime
) -> bool:
    row = await conn.fetchrow(
        "SELECT failures, window_started FROM password_attempts WHERE subject = $1", subject
    )
    if row is None or row["window_started"] + limit.window <= now:
        return False
    return bool(row["failures"] >= limit.failures)


async def record_failure(
    conn: asyncpg.Connection, subject: str, limit: PasswordLimit, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO password_attempts (subject, failures, window_started) VALUES ($1, 1, $2)"
        " ON CONFLICT (subject) DO UPDATE SET"
        " failures = CASE WHEN password_attempts.window_started + $3 <= $2 THEN 1"
        "   ELSE password_attempts.failures + 1 END,"
        " window_started = CASE WHEN password_attempts.window_started + $3 <= $2 THEN $2"
        "   ELSE password_attempts.window_started END",
        subject,
        now,
        limit.window,
    )


async def clear(conn: asyncpg.Connection, subject: str) -> None:
    await conn.execute("DELETE FROM password_attempts WHERE subject = $1", subject)

"""The failed-password counters' reservation (services/auth/adapters/password_attempts.py,
schema.sql's `password_attempts_reserve`): one round trip, all or none, and no more
parallel attempts through than the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from services.auth.adapters import password_attempts
from services.auth.adapters.password_attempts import Subject
from services.auth.domain.lockout import PasswordLimit
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from tests.conftest import FreshDatabase
from tests.integration.movable_clock import START

pytestmark = pytest.mark.integration

NARROW = Subject("pair:org:a@example.com|192.0.2.1", PasswordLimit(2, timedelta(minutes=15)))
WIDE = Subject("address:192.0.2.1", PasswordLimit(5, timedelta(hours=1)))


@pytest.fixture
async def pool(fresh_database: FreshDatabase) -> AsyncIterator[asyncpg.Pool]:
    opened = await open_pool(await fresh_database("attempts"), min_size=1, max_size=8)
    await apply_schema(opened, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    try:
        yield opened
    finally:
        await opened.close()


async def _counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT subject, failures FROM password_attempts")
    return {r["subject"]: r["failures"] for r in rows}


async def test_a_reservation_is_one_statement(pool: asyncpg.Pool) -> None:
    # Each round trip is CPU in auth and in PostgreSQL on every login, beside argon2's.
    statements: list[str] = []
    async with pool.acquire() as conn:
        assert await password_attempts.reserve(conn, [NARROW, WIDE], START)  # type look-ups
        conn.add_query_logger(lambda logged: statements.append(logged.query))
        assert await password_attempts.reserve(conn, [NARROW, WIDE], START)
        await asyncio.sleep(0.01)  # asyncpg calls its query loggers soon, not at once
        assert len(statements) == 1, statements


async def test_a_refused_reservation_counts_against_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        outcomes = [await password_attempts.reserve(conn, [NARROW, WIDE], START) for _ in range(4)]
        assert outcomes == [True, True, False, False]
        # The wide counter was not charged for the refused attempts.
        assert await _counts(pool) == {NARROW.key: 2, WIDE.key: 2}
        # Its window over, the narrow one counts again from one.
        later = START + timedelta(minutes=15)
        assert await password_attempts.reserve(conn, [NARROW, WIDE], later)
        assert await _counts(pool) == {NARROW.key: 1, WIDE.key: 3}
        # Inside a caller's transaction too, the refusal leaves that transaction usable.
        async with conn.transaction():
            assert await password_attempts.reserve(conn, [NARROW, WIDE], later)
            assert not await password_attempts.reserve(conn, [NARROW, WIDE], later)
            assert await conn.fetchval("SELECT 1") == 1
        assert await _counts(pool) == {NARROW.key: 2, WIDE.key: 4}


async def test_parallel_attempts_beyond_the_limit_are_refused(pool: asyncpg.Pool) -> None:
    async def attempt() -> bool:
        async with pool.acquire() as conn:
            return await password_attempts.reserve(conn, [NARROW, WIDE], START)

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sorted(outcomes) == [False] * 6 + [True] * 2
    assert await _counts(pool) == {NARROW.key: 2, WIDE.key: 2}

"""auth's pool skips asyncpg's reset query on release (shared/db.py, `session_reset=False`):
a round trip saved on every pooled use. That is only sound while nothing auth runs on a
pooled connection leaves session state behind, and while an open transaction is still
rolled back on release; both are held here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.db import open_pool
from tests.conftest import FreshDatabase

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Connections of their own (asyncpg.connect), never pooled: the outbox relay's (its
# session advisory lock, LISTEN) and the lookup memory's listener.
OWN_CONNECTIONS = {"shared/outbox.py", "services/auth/adapters/decision_memory.py"}
SESSION_STATE = re.compile(
    r"\bLISTEN\s+\w|add_listener\(|pg_(try_)?advisory_lock(_shared)?\(|\bTEMP(ORARY)?\s+TABLE\b"
    r"|\bWITH\s+HOLD\b|set_config\(|(^|[\"';]\s*)SET\s+(SESSION\s+)?\w+\s*(=|TO)\s",
    re.MULTILINE,  # SQL is written in capitals here
)


def test_nothing_auth_runs_keeps_session_state_on_a_pooled_connection() -> None:
    found = []
    for folder in ("services/auth", "shared"):
        for path in sorted((ROOT / folder).rglob("*")):
            name = str(path.relative_to(ROOT))
            if path.suffix not in (".py", ".sql") or name in OWN_CONNECTIONS:
                continue
            # Comments may name what they do not do.
            code = "\n".join(
                line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
            )
            found += [(name, match.group(0)) for match in SESSION_STATE.finditer(code)]
    assert found == []


async def test_a_release_sends_nothing_and_still_ends_an_open_transaction(
    fresh_database: FreshDatabase,
) -> None:
    pool = await open_pool(
        await fresh_database("pool_session_reset"), min_size=1, max_size=1, session_reset=False
    )
    sent: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda logged: sent.append(logged.query))
            assert await conn.fetchval("SELECT 1") == 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 2") == 2
        assert sent == ["SELECT 1", "SELECT 2"]  # no reset query between them
        # A transaction left open (not by `conn.transaction()`) is rolled back on release.
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (a int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await pool.close()


async def test_other_pools_still_reset_the_session(fresh_database: FreshDatabase) -> None:
    pool = await open_pool(await fresh_database("pool_default_reset"), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") != "left-behind"
    finally:
        await pool.close()


def test_auth_opens_its_pool_without_the_reset() -> None:
    source = (ROOT / "services/auth/main.py").read_text()
    assert "session_reset=False" in source

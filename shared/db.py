"""PostgreSQL connection pools and schema setup shared by every service."""

from __future__ import annotations

import json
from importlib import resources

import asyncpg

# Any fixed number works; it serialises schema setup between replicas starting together.
_SCHEMA_LOCK = 0x504D4641


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo: asyncpg has already rolled back any open transaction and dropped
    the connection's listener callbacks before it calls this."""


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, session_reset: bool = True
) -> asyncpg.Pool:
    """`session_reset=False` skips asyncpg's reset query on every release (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`, a round trip per pooled
    use): only for a service whose pooled connections keep no session state (settings,
    listeners, session advisory locks, temporary tables, held cursors); an open
    transaction is still rolled back on release."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=None if session_reset else _keep_session,
    )
    assert pool is not None
    return pool


def read_sql(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text()


SCHEMA_LOCK = _SCHEMA_LOCK  # for DDL run outside apply_schema


async def apply_schema(pool: asyncpg.Pool, *scripts: str) -> None:
    """Run idempotent DDL scripts, one replica at a time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        for script in scripts:
            if script.strip():
                await conn.execute(script)


EVENTSTORE_SQL = read_sql("shared.sql", "eventstore.sql")

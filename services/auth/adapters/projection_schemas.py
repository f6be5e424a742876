"""The projection's schemas in PostgreSQL: a fresh one to rebuild into, and the swap that
puts it live in one transaction."""

from __future__ import annotations

import asyncpg

from services.auth.adapters import decision_memory
from services.auth.adapters.projection import LIVE_SCHEMA, LoginProjection
from shared.db import SCHEMA_LOCK

# Taken shared by every live batch (ProjectionConsumer's `shared_lock`), exclusively by the swap.
SWAP_LOCK = 0x4C4F474E


async def start_fresh(conn: asyncpg.Connection, fresh: LoginProjection) -> None:
    """An empty schema for the rebuild, without its lookup indexes: they are built once it
    has caught up, which is cheaper than keeping them through every insert."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {fresh.schema} CASCADE")
    await fresh.create(conn, lookup_indexes=False)


async def hold_swap_lock(conn: asyncpg.Connection) -> None:
    """Until the transaction ends: no live batch applies meanwhile."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK)


async def swap_in(conn: asyncpg.Connection, live: LoginProjection, fresh: LoginProjection) -> None:
    """Rename `fresh` to `live` (inside the caller's transaction, under the swap lock)."""
    retired = f"{live.schema}_retired"
    await conn.execute(f"DROP SCHEMA IF EXISTS {retired} CASCADE")
    await conn.execute(f"ALTER SCHEMA {live.schema} RENAME TO {retired}")
    await conn.execute(f"ALTER SCHEMA {fresh.schema} RENAME TO {live.schema}")
    await conn.execute(f"DROP SCHEMA {retired} CASCADE")
    # The live schema announces its changes (it was built without the triggers), and
    # every replica's remembered login requirements may be wrong now (decision_memory).
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
    await conn.execute(decision_memory.triggers_sql(live.schema, live_schema=LIVE_SCHEMA))
    await conn.execute(
        "SELECT pg_notify($1, $2)", decision_memory.CHANNEL, decision_memory.EVERYTHING
    )

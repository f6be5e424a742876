"""Rebuild the login projection from offset 0 into a fresh schema, then swap it in.

The live consumer keeps applying (and the service keeps answering) throughout. The swap
holds the projection lock that every live batch takes shared, waits until the rebuilt
schema is at least as far as the live one, and renames the schemas in one transaction;
the live consumer then re-applies at most one batch, which its version checks ignore.
The rebuild applies through the same `LoginProjection.apply` as the live consumer, so it
follows the same gapless rule: what waits beyond a version gap waits in the fresh schema
too (its `pending_events`), and ends identical to the live one. It runs no reactions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.auth.adapters.projection import LIVE_SCHEMA, TOPICS, LoginProjection
from services.auth.adapters.projection_schemas import (
    SWAP_LOCK,
    hold_swap_lock,
    start_fresh,
    swap_in,
)
from shared.projection import ProjectionConsumer
from shared.projection_offsets import stored_offsets
from shared.signing import TrustMap

REBUILD_SCHEMA = f"{LIVE_SCHEMA}_rebuild"
__all__ = ["REBUILD_SCHEMA", "SWAP_LOCK", "Progress", "rebuild"]


@dataclass(frozen=True)
class Progress:
    applied: int
    lag: int
    caught_up: bool


async def rebuild(
    pool: asyncpg.Pool,
    bootstrap: str,
    deadletter: AIOKafkaProducer,
    *,
    trust: TrustMap,
    topics: Sequence[str] = TOPICS,
    live_schema: str = LIVE_SCHEMA,
    rebuild_schema: str = REBUILD_SCHEMA,
    swap: bool = True,
    on_progress: Callable[[Progress], None] = lambda _: None,
    batch_size: int = 5000,
    security: Mapping[str, Any] | None = None,
) -> int:
    """Rebuild; returns how many events were applied. With `swap=False`, leave it beside."""
    fresh = LoginProjection(rebuild_schema)
    async with pool.acquire() as conn:
        await start_fresh(conn, fresh)
    # No group: this reader owns every partition and starts from offset 0.
    consumer = ProjectionConsumer(
        bootstrap=bootstrap,
        topics=topics,
        pool=pool,
        projection=fresh,
        deadletter=deadletter,
        trust=trust,
        batch_size=batch_size,
        security=security,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run(), name="projection-rebuild")
    try:
        while not consumer.ready:
            if task.done():
                await task
            on_progress(Progress(consumer.applied, sum((await consumer.lag()).values()), False))
            await asyncio.sleep(0.2)
        async with pool.acquire() as conn:
            await fresh.create_lookup_indexes(conn)
        if swap:
            await _swap(pool, LoginProjection(live_schema), fresh, task)
        on_progress(Progress(consumer.applied, 0, True))
        return consumer.applied
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def _swap(
    pool: asyncpg.Pool,
    live: LoginProjection,
    fresh: LoginProjection,
    rebuilding: asyncio.Task[None],
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await hold_swap_lock(conn)
        target = await stored_offsets(conn, live)
        while True:
            async with pool.acquire() as reader:
                reached = await stored_offsets(reader, fresh)
            if all(reached.get(tp, 0) >= offset for tp, offset in target.items()):
                break
            if rebuilding.done():
                await rebuilding
            await asyncio.sleep(0.05)
        await swap_in(conn, live, fresh)

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
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
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

# Allocations between two young-generation collections while a rebuild runs (CPython's
# default is 700), and the older generations' thresholds (default 10, 10).
REBUILD_GC_THRESHOLDS = (100_000, 20, 100)


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
    with fewer_collections():
        return await _rebuild(
            pool,
            bootstrap,
            deadletter,
            trust=trust,
            topics=topics,
            live_schema=live_schema,
            rebuild_schema=rebuild_schema,
            swap=swap,
            on_progress=on_progress,
            batch_size=batch_size,
            security=security,
        )


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often meanwhile; restore its thresholds after.

    A batch in flight (its records, events and rows, tens of thousands of objects) lives
    across many collections at the default thresholds, so it is promoted to the oldest
    generation and a full collection ran about once per batch, traversing every live
    object of the process while holding the GIL: about a quarter of the rebuild's CPU
    (docs/performance.md). With a young generation this large, a batch is freed by
    reference counting before it is ever collected. Collections still run, every 100,000
    allocations, so what few cycles there are (asyncio's futures, exceptions) are freed a
    little later, not never. The rebuild runs in its own process (`portal-mfa projection
    rebuild`), so only that process's collector changes, and only while it rebuilds.
    """
    before = gc.get_threshold()
    gc.set_threshold(*REBUILD_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _rebuild(
    pool: asyncpg.Pool,
    bootstrap: str,
    deadletter: AIOKafkaProducer,
    *,
    trust: TrustMap,
    topics: Sequence[str],
    live_schema: str,
    rebuild_schema: str,
    swap: bool,
    on_progress: Callable[[Progress], None],
    batch_size: int,
    security: Mapping[str, Any] | None,
) -> int:
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

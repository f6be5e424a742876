"""Rebuilding the login projection during live traffic ends equal to the live one."""

from __future__ import annotations

import asyncio
from random import Random

import pytest
from aiokafka import TopicPartition

from services.auth.projection import LoginProjection
from services.auth.reactions import AuthProjection
from services.auth.rebuild import SWAP_LOCK, rebuild
from shared.contracts import CONTACTS_EVENTS, PREFERENCES_EVENTS
from shared.db import EVENTSTORE_SQL, apply_schema, read_sql
from shared.projection import ProjectionConsumer
from shared.projection_offsets import stored_offsets
from tests.integration.streams import (
    Setup,
    ends_of,
    fold,
    history,
    new_consumer,
    produce,
    projected,
    raw_rows,
    running,
    until,
)
from tests.signing_keys import TEST_TRUST

pytestmark = pytest.mark.integration


async def test_rebuild_during_live_traffic_swaps_in_an_equal_projection(
    setup: Setup, kafka_bootstrap: str
) -> None:
    await apply_schema(setup.pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    live = LoginProjection()
    steady = LoginProjection("steady")  # never rebuilt: the reference
    async with setup.pool.acquire() as conn:
        await live.create(conn)
        await steady.create(conn)
    events = history(Random(7), orgs=15, contacts=300, total=6000)
    before, during = events[:3000], events[3000:]
    placed = await produce(setup.producer, setup.topics, before)

    def consumer(
        projection: LoginProjection | AuthProjection, shared_lock: int | None = None
    ) -> ProjectionConsumer:
        return new_consumer(
            bootstrap=kafka_bootstrap,
            topics=setup.topics,
            pool=setup.pool,
            projection=projection,  # type: ignore[arg-type]
            deadletter=setup.producer,
            batch_size=200,
            shared_lock=shared_lock,
        )

    async with (
        running(consumer(AuthProjection(live), SWAP_LOCK)) as live_task,
        running(consumer(steady)) as steady_task,
    ):

        async def traffic() -> None:
            for start in range(0, len(during), 150):
                placed.extend(
                    await produce(setup.producer, setup.topics, during[start : start + 150])
                )
                await asyncio.sleep(0.02)

        answered = 0

        async def reader() -> None:
            # The service keeps answering from the live schema throughout.
            nonlocal answered
            while True:
                async with setup.pool.acquire() as conn:
                    await live.policy(conn, "org-0001")
                answered += 1
                await asyncio.sleep(0.01)

        reading = asyncio.create_task(reader())
        applied = await asyncio.gather(
            traffic(),
            rebuild(
                setup.pool,
                kafka_bootstrap,
                setup.producer,
                trust=TEST_TRUST,
                topics=[setup.topics[PREFERENCES_EVENTS], setup.topics[CONTACTS_EVENTS]],
                batch_size=300,
            ),
        )
        assert applied[1] >= len(before)
        reading.cancel()
        assert answered > 5

        ends = ends_of(placed)

        async def caught_up(projection: LoginProjection) -> bool:
            async with setup.pool.acquire() as conn:
                offsets = await stored_offsets(conn, projection)
            return all(
                offsets.get(TopicPartition(topic, partition), 0) >= end
                for (topic, partition), end in ends.items()
            )

        await until(lambda: caught_up(live), within=60, what="live", watch=[live_task])
        await until(lambda: caught_up(steady), within=60, what="steady", watch=[steady_task])

    async with setup.pool.acquire() as conn:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        assert "login_projection_rebuild" not in schemas  # swapped in, not left beside
        live_rows = await raw_rows(conn, live.schema)
        assert live_rows == await raw_rows(conn, steady.schema)
        assert await projected(conn, live.schema) == fold(events)

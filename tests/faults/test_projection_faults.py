"""The projection consumer sorts failures: retry what may succeed later, dead-letter only
what never can.

A statement cancelled mid-batch (pg_cancel_backend, as a statement_timeout does) or a
lock that times out is retried in place: the event is applied, never dead-lettered.
A record far larger than any event is dead-lettered as a reference (not the record, so the
dead-letter send cannot fail on size) and the events after it still apply. A dead-letter
send that fails is retried, and nothing behind it is applied before it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from portal_mfa.infra import EmbeddedBroker, ensure_topics
from services.auth.projection import LoginProjection
from shared.contracts import CONTACTS_EVENTS, DEADLETTER, PREFERENCES_EVENTS, Event
from shared.db import open_pool
from shared.projection import MAX_RECORD_BYTES, ProjectionConsumer
from tests.faults.outages import broker_paused, eventually, figure
from tests.integration.streams import (
    FreshDatabase,
    FreshTopics,
    MakeSettings,
    fold,
    history,
    produce,
    projected,
    started_producer,
)
from tests.signing_keys import TEST_TRUST

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

VICTIM = "projection_victim"


@dataclass
class Stage:
    topics: dict[str, str]
    url: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    projection: LoginProjection
    bootstrap: str

    def consumer(
        self, *, deadletter: AIOKafkaProducer | None = None, batch_size: int = 50
    ) -> ProjectionConsumer:
        return ProjectionConsumer(
            bootstrap=self.bootstrap,
            topics=[self.topics[PREFERENCES_EVENTS], self.topics[CONTACTS_EVENTS]],
            pool=self.pool,
            projection=self.projection,
            deadletter=deadletter or self.producer,
            trust=TEST_TRUST,
            batch_size=batch_size,
            deadletter_topic=self.topics[DEADLETTER],
            retry_first_s=0.05,
            retry_cap_s=1.0,
        )

    async def converged(self, events: Sequence[Event], conn: asyncpg.Connection) -> bool:
        """Read on the test's own connection: the consumer's are being interfered with."""
        return await projected(conn, self.projection.schema) == fold(events)


@pytest.fixture
async def stage(
    fresh_topics: FreshTopics,
    fresh_database: FreshDatabase,
    make_settings: MakeSettings,
    kafka_bootstrap: str,
) -> AsyncIterator[Stage]:
    topics = await fresh_topics(PREFERENCES_EVENTS, CONTACTS_EVENTS, DEADLETTER, partitions=1)
    url = await fresh_database("faults")
    # Tagged, so the test can find (and cancel) the consumer's statements.
    separator = "&" if "?" in url else "?"
    pool = await open_pool(f"{url}{separator}application_name={VICTIM}", min_size=1, max_size=3)
    projection = LoginProjection(schema="faulted")
    try:
        async with pool.acquire() as conn:
            await projection.create(conn)
        async with started_producer(make_settings()) as producer:
            yield Stage(topics, url, pool, producer, projection, kafka_bootstrap)
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def consuming(consumer: ProjectionConsumer) -> AsyncIterator[asyncio.Task[None]]:
    await consumer.start()
    task = asyncio.create_task(consumer.run_until_cancelled())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def retried(consumer: ProjectionConsumer, times: int) -> bool:
    return consumer.retries >= times


async def dead_letters(bootstrap: str, topic: str, *, wait_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records.extend(r for part in batch.values() for r in part)
        return records
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def contacts_locked(admin: asyncpg.Connection, stage: Stage) -> AsyncIterator[None]:
    """The projection's contacts table held in an exclusive lock, so its writes wait."""
    locker = admin.transaction()
    await locker.start()
    await admin.execute(f"LOCK TABLE {stage.projection.schema}.contacts IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await locker.rollback()


async def test_a_cancelled_statement_is_retried_and_the_event_applied(stage: Stage) -> None:
    events = history(Random(57014), orgs=10, contacts=60, total=400)
    consumer = stage.consumer(batch_size=50)
    admin = await asyncpg.connect(stage.url)
    cancelled = 0
    try:
        async with consuming(consumer) as task:
            await eventually(lambda: consumer.ready, within=30, what="ready on empty topics")
            # Hold the consumer's statement still (a lock it waits for), then cancel it
            # there, as a statement_timeout or an operator would; three times over.
            async with contacts_locked(admin, stage):
                await produce(stage.producer, stage.topics, events)
                while cancelled < 3:

                    async def waiting_on_the_lock() -> bool:
                        found: int = await admin.fetchval(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                            VICTIM,
                        )
                        return found > 0

                    await eventually(waiting_on_the_lock, within=30, what="a waiting statement")
                    cancelled += await admin.fetchval(
                        "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid))"
                        " FROM pg_stat_activity"
                        " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                        VICTIM,
                    )
                    await eventually(
                        functools.partial(retried, consumer, cancelled), within=30, what="a retry"
                    )
                    assert not consumer.ready
                reason = consumer.reason
                assert reason is not None and "57014" in reason, reason
            took = await eventually(
                lambda: stage.converged(events, admin), within=30, what="every event applied"
            )
            await eventually(lambda: consumer.ready, within=30, what="ready again")
            assert not task.done()
    finally:
        await admin.close()
    assert consumer.dead_lettered == 0
    assert await dead_letters(stage.bootstrap, stage.topics[DEADLETTER], wait_s=1.0) == []
    figure("cancelled statement: reason while retrying", reason)
    figure(
        "cancelled statement: cancels, retries, dead letters", f"{cancelled}, {consumer.retries}, 0"
    )
    figure("cancelled statement: applied after the last cancel (s)", f"{took:.1f}")


async def test_a_lock_timeout_is_retried_in_place_and_the_event_applied(stage: Stage) -> None:
    events = history(Random(55), orgs=10, contacts=50, total=300)
    admin = await asyncpg.connect(stage.url)
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{database}" SET lock_timeout = 100')
        await stage.pool.expire_connections()  # new sessions take the setting
        consumer = stage.consumer(batch_size=50)
        async with consuming(consumer) as task:
            await eventually(lambda: consumer.ready, within=30, what="ready on empty topics")
            async with contacts_locked(admin, stage):
                await produce(stage.producer, stage.topics, events)
                await eventually(lambda: consumer.retries >= 3, within=30, what="lock timeouts")
                assert not consumer.ready
                assert consumer.reason is not None and "55P03" in consumer.reason, consumer.reason
                reason = consumer.reason
                assert not await stage.converged(events, admin)
            took = await eventually(
                lambda: stage.converged(events, admin),
                within=30,
                what="every event applied",
                interval=0.2,
            )
            await eventually(lambda: consumer.ready, within=30, what="ready again")
            assert not task.done()
    finally:
        await admin.close()
    assert consumer.dead_lettered == 0
    assert await dead_letters(stage.bootstrap, stage.topics[DEADLETTER], wait_s=1.0) == []
    figure("lock timeout: reason while blocked", reason)
    figure("lock timeout: retries while blocked", consumer.retries)
    figure("lock timeout: applied after the lock was released (s)", f"{took:.1f}")


async def test_a_record_too_large_for_an_event_is_dead_lettered_as_a_reference(
    stage: Stage,
) -> None:
    events = history(Random(2), orgs=5, contacts=20, total=120)
    before, after = events[:60], events[60:]
    topic = stage.topics[CONTACTS_EVENTS]
    await produce(stage.producer, stage.topics, before)
    huge = b'{"event_type": "ContactCreated", "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    big = AIOKafkaProducer(bootstrap_servers=stage.bootstrap, max_request_size=4 * 1024 * 1024)
    await big.start()
    try:
        placed = await (await big.send(topic, value=huge, key=b"contact-huge"))
    finally:
        await big.stop()
    await produce(stage.producer, stage.topics, after)

    # The dead letter goes out through an ordinary producer (1 MiB request limit).
    consumer = stage.consumer(batch_size=25)
    admin = await asyncpg.connect(stage.url)
    try:
        async with consuming(consumer) as task:
            took = await eventually(
                lambda: stage.converged(events, admin),
                within=60,
                what="the events after it",
                interval=0.2,
            )
            await eventually(lambda: consumer.ready, within=30, what="ready")
            assert not task.done()
    finally:
        await admin.close()
    assert consumer.dead_lettered == 1

    (dead,) = await dead_letters(stage.bootstrap, stage.topics[DEADLETTER], wait_s=1.5)
    assert len(dead.value) < 4096, "a reference, never the record itself"
    reference = json.loads(dead.value)
    assert reference["reference"] == {
        "topic": topic,
        "partition": placed.partition,
        "offset": placed.offset,
    }
    assert reference["sha256"] == hashlib.sha256(huge).hexdigest()
    assert reference["size"] > MAX_RECORD_BYTES
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers["original_offset"] == str(placed.offset)
    assert headers["sha256"] == reference["sha256"]
    assert "exceeds" in headers["error"]
    figure("oversized record: dead letter bytes for a 2 MiB record", len(dead.value))
    figure("oversized record: later events applied within (s)", f"{took:.1f}")


async def test_a_failed_dead_letter_send_is_retried_not_skipped(
    stage: Stage, own_broker: EmbeddedBroker
) -> None:
    events = history(Random(3), orgs=3, contacts=10, total=40)
    first, rest = events[:20], events[20:]
    await produce(stage.producer, stage.topics, first)
    poison = await (
        await stage.producer.send(stage.topics[CONTACTS_EVENTS], value=b"{not json", key=b"c")
    )
    await produce(stage.producer, stage.topics, rest)
    # Dead letters go to a broker of their own, frozen: every send times out until it thaws.
    await ensure_topics(own_broker.bootstrap, [DEADLETTER])
    impatient = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap, request_timeout_ms=1000)
    await impatient.start()
    admin = await asyncpg.connect(stage.url)
    try:
        consumer = ProjectionConsumer(
            bootstrap=stage.bootstrap,
            topics=[stage.topics[PREFERENCES_EVENTS], stage.topics[CONTACTS_EVENTS]],
            pool=stage.pool,
            projection=stage.projection,
            deadletter=impatient,
            trust=TEST_TRUST,
            batch_size=10,
            deadletter_topic=DEADLETTER,
            retry_first_s=0.05,
            retry_cap_s=0.5,
        )
        async with consuming(consumer) as task:
            async with broker_paused(own_broker):
                await eventually(lambda: consumer.retries >= 2, within=30, what="failed sends")
                assert not consumer.ready
                assert consumer.dead_lettered == 0
                reason = consumer.reason
                assert not await stage.converged(events, admin), "nothing behind it applied"
            took = await eventually(
                lambda: stage.converged(events, admin), within=30, what="the rest", interval=0.2
            )
            await eventually(lambda: consumer.ready, within=30, what="ready")
            assert not task.done()
        assert consumer.dead_lettered == 1
        (dead,) = await dead_letters(own_broker.bootstrap, DEADLETTER, wait_s=1.0)
        assert dict(dead.headers)["original_offset"] == str(poison.offset).encode()
        figure("failed dead-letter send: reason while failing", reason)
        figure("failed dead-letter send: applied after the broker thawed (s)", f"{took:.1f}")
    finally:
        await impatient.stop()
        await admin.close()

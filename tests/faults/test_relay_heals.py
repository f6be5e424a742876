"""The outbox relay heals by itself: a frozen broker, a killed PostgreSQL.

Events are appended the whole time, as commands keep coming during an outage; at the end
every event is on Kafka, in order per aggregate, and the relay is the same task that
started (never restarted from outside).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres, ensure_topics
from shared.backoff import Backoff
from shared.contracts import (
    PREFERENCES_EVENTS,
    Cause,
    Empty,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool
from shared.eventstore import append_events
from shared.kafka import new_producer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from tests.faults.outages import broker_paused, eventually, figure
from tests.signing_keys import OWNER_SIGNER

ORGS = 8
# 25 s by default; FAULT_PAUSE_S=60 reproduces the 60 s pause of the incident.
PAUSE_S = float(os.environ.get("FAULT_PAUSE_S", "25"))

pytestmark = [pytest.mark.faults, pytest.mark.timeout(PAUSE_S + 100)]


def policy_event(org: str, version: int) -> EventEnvelope:
    cls = MfaPolicyEnabled if version % 2 else MfaPolicyDisabled
    cause = Cause(actor="admin-1", at=datetime.now(UTC), correlation_id=f"{org}-{version}")
    return cls.new(
        org_id=org, aggregate_id=org, aggregate_version=version, payload=Empty(), cause=cause
    )


class Appender:
    """Appends one event per org every `every_s`, as commands would; remembers the order."""

    def __init__(self, pool: asyncpg.Pool, every_s: float = 0.05) -> None:
        self._pool = pool
        self._every_s = every_s
        self.orgs = [f"org-{uuid.uuid4().hex[:8]}-{i}" for i in range(ORGS)]
        self.appended: dict[str, list[str]] = defaultdict(list)  # org -> event ids in order
        self.stopping = False

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.appended.values())

    async def append_round(self) -> None:
        version = len(self.appended[self.orgs[0]]) + 1
        events = [policy_event(org, version) for org in self.orgs]
        async with self._pool.acquire() as conn, conn.transaction():
            await append_events(conn, events)
        for event in events:
            self.appended[event.aggregate_id].append(str(event.event_id))

    async def run(self) -> None:
        # Stopped by a flag, not cancelled: a cancel landing after a round's commit would
        # publish events this appender never wrote down.
        while not self.stopping:
            await self.append_round()
            await asyncio.sleep(self._every_s)


@contextlib.asynccontextmanager
async def running_relay(
    url: str, bootstrap: str, *, request_timeout_ms: int | None = None
) -> AsyncIterator[tuple[OutboxRelay, asyncio.Task[None]]]:
    producer: AIOKafkaProducer = (
        new_producer(Settings(kafka_bootstrap=bootstrap, kafka_idempotence=False))
        if request_timeout_ms is None
        # A producer that gives up inside the pause: its sends fail, and the relay retries.
        else AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", request_timeout_ms=request_timeout_ms
        )
    )
    await producer.start()
    relay = OutboxRelay(
        url,
        producer,
        OWNER_SIGNER,
        poll_interval_s=0.2,
        batch_size=100,
        name="fault",
        stuck_after_s=3.0,
        watch_interval_s=0.25,
        retry=Backoff(first_s=0.1, cap_s=2.0),
    )
    task = asyncio.create_task(relay.run())
    try:
        yield relay, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()


async def unsent(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return count


async def published(bootstrap: str, appended: dict[str, list[str]]) -> dict[str, list[str]]:
    """Event ids per org as read back from Kafka, in offset order (duplicates kept)."""
    missing = {event_id for ids in appended.values() for event_id in ids}
    found: dict[str, list[str]] = defaultdict(list)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(PREFERENCES_EVENTS) or ())
        consumer.assign([TopicPartition(PREFERENCES_EVENTS, p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + 30
        while missing and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for record in batch:
                    envelope = json.loads(record.value)
                    found[envelope["aggregate_id"]].append(envelope["event_id"])
                    missing.discard(envelope["event_id"])
    finally:
        await consumer.stop()
    return found


def assert_every_event_in_order(appended: dict[str, list[str]], found: dict[str, list[str]]) -> int:
    """Every appended event published, first copies in append order; returns duplicates."""
    duplicates = 0
    for org, ids in appended.items():
        first_copies = list(dict.fromkeys(found[org]))
        version = {event_id: n for n, event_id in enumerate(ids, 1)}
        seen = [version.get(event_id) for event_id in found[org]]
        assert first_copies == ids, f"{org}: lost or out of order: versions as published {seen}"
        duplicates += len(found[org]) - len(ids)
    return duplicates


@pytest.fixture
async def outbox(
    own_postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    url = await own_postgres.create_database("relay")
    pool = await open_pool(url, min_size=1, max_size=3)
    try:
        await apply_schema(pool, EVENTSTORE_SQL)
        await ensure_topics(own_broker.bootstrap, {PREFERENCES_EVENTS: 3})
        yield url, pool
    finally:
        pool.terminate()


@pytest.mark.parametrize(
    "request_timeout_ms",
    [None, 5000],
    ids=["sends-wait-out-the-pause", "sends-time-out-and-are-retried"],
)
async def test_relay_publishes_everything_in_order_after_the_broker_is_frozen(
    outbox: tuple[str, asyncpg.Pool],
    own_broker: EmbeddedBroker,
    request_timeout_ms: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, pool = outbox
    appender = Appender(pool)
    caplog.set_level("WARNING", logger="shared.outbox")
    relay_options = {"request_timeout_ms": request_timeout_ms}
    async with running_relay(url, own_broker.bootstrap, **relay_options) as (relay, task):
        appending = asyncio.create_task(appender.run())
        try:
            await eventually(lambda: relay.published >= 5 * ORGS, within=20, what="first events")
            assert relay.healthy

            async with broker_paused(own_broker):
                paused_at = time.monotonic()
                noticed = await eventually(
                    lambda: not relay.healthy, within=PAUSE_S - 5, what="the relay to notice"
                )
                figure("relay: not ready after broker froze (s)", f"{noticed:.1f}")
                await asyncio.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
                assert not relay.healthy, "still not ready at the end of the pause"
                reason_in_pause = relay.reason
                backlog_at_thaw = await unsent(pool)
                last_at_thaw = await pool.fetchval("SELECT max(position) FROM outbox")
            thawed_at = time.monotonic()
            assert backlog_at_thaw > 0

            async def caught_up_with_the_pause() -> bool:
                return not await pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND position <= $1",
                    last_at_thaw,
                )

            recovered = await eventually(
                caught_up_with_the_pause, within=60, what="the backlog of the pause to drain"
            )
            await asyncio.sleep(1)  # appends go on a moment after the recovery, then stop
        finally:
            appender.stopping = True
            await appending

        async def drained() -> bool:
            return await unsent(pool) == 0

        await eventually(drained, within=30, what="the last events")
        healthy_after = await eventually(
            lambda: relay.healthy, within=10, what="the relay to report healthy"
        )
        assert not task.done(), "the relay task must still be the one that started"

    found = await published(own_broker.bootstrap, appender.appended)
    duplicates = assert_every_event_in_order(appender.appended, found)
    changes = [r.getMessage() for r in caplog.records if r.name == "shared.outbox"]
    assert [line.split()[3].rstrip(":") for line in changes] == ["broken", "recovered"], (
        f"one line per state change, not per retry: {changes}"
    )
    figure("relay: reason while frozen", reason_in_pause)
    figure("relay: events appended", appender.total)
    figure("relay: backlog at thaw (rows)", backlog_at_thaw)
    figure("relay: backlog of the pause published after thaw (s)", f"{recovered:.1f}")
    figure("relay: healthy again after thaw (s)", f"{time.monotonic() - thawed_at:.1f}")
    figure("relay: duplicates on Kafka", duplicates)
    figure("relay: log lines", changes)
    assert healthy_after >= 0

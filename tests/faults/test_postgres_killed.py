"""PostgreSQL killed (SIGKILL) and restarted under a running relay and projection consumer.

Neither is restarted from outside: both notice, say so (relay not healthy, consumer not
ready), retry with back-off, and carry on. At the end the projection equals the fold of
every event appended, before, during and after the outage: nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from random import Random

import asyncpg
import pytest

from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres, ensure_topics
from services.auth.projection import TOPICS, LoginProjection
from shared.backoff import Backoff
from shared.contracts import CONTACTS_EVENTS, DEADLETTER, PREFERENCES_EVENTS, Event
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool
from shared.eventstore import append_events
from shared.kafka import new_producer
from shared.outbox import OutboxRelay
from shared.projection import ProjectionConsumer
from shared.settings import Settings
from tests.faults.outages import eventually, figure
from tests.integration.streams import fold, history, projected
from tests.signing_keys import OWNER_SIGNER, TEST_TRUST

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

CHUNK = 40  # events per append transaction


ATTEMPT_S = 10.0


class Writer:
    """Appends `events` in order, a chunk at a time, riding out the outage as a command
    service would: a chunk whose commit is in doubt is looked up before it is retried."""

    def __init__(self, url: str, events: Sequence[Event], every_s: float = 0.03) -> None:
        self._url = url
        self._events = events
        self._every_s = every_s
        self.appended = 0
        self.failures = 0
        self.last_failure = ""

    async def run(self) -> None:
        pool: asyncpg.Pool | None = None
        while self.appended < len(self._events):
            chunk = self._events[self.appended : self.appended + CHUNK]
            try:
                if pool is None:
                    pool = await asyncio.wait_for(
                        open_pool(self._url, min_size=1, max_size=1), ATTEMPT_S
                    )
                # Bounded: a connection to a server that is going away can hang unanswered.
                await asyncio.wait_for(self._append(pool, chunk), ATTEMPT_S)
                self.appended += len(chunk)
                await asyncio.sleep(self._every_s)
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                # What asyncpg raises when the server dies in the middle of a statement.
                asyncpg.exceptions.InternalClientError,
            ) as exc:
                self.failures += 1
                self.last_failure = repr(exc)[:200]
                if pool is not None:
                    pool.terminate()
                    pool = None
                await asyncio.sleep(0.2)
        if pool is not None:
            await pool.close()

    async def _append(self, pool: asyncpg.Pool, chunk: Sequence[Event]) -> None:
        if not await self._stored(pool, chunk):
            async with pool.acquire() as conn, conn.transaction():
                await append_events(conn, chunk)  # type: ignore[arg-type]

    @staticmethod
    async def _stored(pool: asyncpg.Pool, chunk: Sequence[Event]) -> bool:
        found: int = await pool.fetchval(
            "SELECT count(*) FROM events WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in chunk],
        )
        return found == len(chunk)


async def test_relay_and_projection_recover_by_themselves_after_postgres_is_killed(
    own_postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> None:
    events = history(Random(20251128), orgs=40, contacts=300, total=4000)
    store_url = await own_postgres.create_database("store")
    projection_url = await own_postgres.create_database("projection")
    async with contextlib.AsyncExitStack() as stack:
        setup = await open_pool(store_url, min_size=1, max_size=1)
        await apply_schema(setup, EVENTSTORE_SQL)
        await setup.close()
        await ensure_topics(
            own_broker.bootstrap, {PREFERENCES_EVENTS: 3, CONTACTS_EVENTS: 3, DEADLETTER: 1}
        )
        projection = LoginProjection(schema="faults")
        pool = await open_pool(projection_url, min_size=1, max_size=4)
        stack.push_async_callback(_terminate, pool)
        async with pool.acquire() as conn:
            await projection.create(conn)

        producer = new_producer(
            Settings(kafka_bootstrap=own_broker.bootstrap, kafka_idempotence=False)
        )
        await producer.start()
        stack.push_async_callback(producer.stop)
        relay = OutboxRelay(
            store_url,
            producer,
            OWNER_SIGNER,
            poll_interval_s=0.2,
            batch_size=100,
            name="store",
            stuck_after_s=3.0,
            watch_interval_s=0.25,
            retry=Backoff(first_s=0.1, cap_s=2.0),
        )
        consumer = ProjectionConsumer(
            bootstrap=own_broker.bootstrap,
            topics=TOPICS,
            pool=pool,
            projection=projection,
            deadletter=producer,
            trust=TEST_TRUST,
            batch_size=50,
            retry_first_s=0.1,
            retry_cap_s=2.0,
        )
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        writer = Writer(store_url, events)
        tasks = [
            asyncio.create_task(relay.run()),
            asyncio.create_task(consumer.run_until_cancelled()),
            asyncio.create_task(writer.run()),
        ]
        stack.push_async_callback(_cancel, tasks)

        await eventually(lambda: writer.appended >= len(events) // 3, within=30, what="appends")
        await eventually(lambda: consumer.applied > 0, within=30, what="first applied events")

        own_postgres.kill()
        killed_at = time.monotonic()
        relay_noticed = await eventually(
            lambda: not relay.healthy, within=20, what="the relay to notice"
        )
        relay_reason = relay.reason
        consumer_noticed = await eventually(
            lambda: not consumer.ready, within=20, what="the consumer to notice"
        )
        consumer_reason = consumer.reason
        await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - killed_at)))
        await own_postgres.restart()
        restarted_at = time.monotonic()
        down_s = restarted_at - killed_at

        try:
            await eventually(lambda: writer.appended == len(events), within=60, what="every append")
        except AssertionError:
            raise AssertionError(
                f"appended {writer.appended} of {len(events)}; {writer.failures} failures,"
                f" the last: {writer.last_failure};"
                f" writer ended: {tasks[2].done() and tasks[2].exception()!r}"
            ) from None
        await eventually(lambda: relay.healthy, within=30, what="the relay to heal")
        relay_healed = time.monotonic() - restarted_at
        assert relay.reason is None

        expected = fold(events)

        async def converged() -> bool:
            async with pool.acquire() as conn:
                return await projected(conn, "faults") == expected

        await eventually(
            converged, within=60, what="the projection to hold every event", interval=0.5
        )
        converged_s = time.monotonic() - restarted_at
        await eventually(lambda: consumer.ready, within=30, what="the consumer to be ready")
        assert not any(task.done() for task in tasks[:2]), "relay and consumer ran throughout"
        assert consumer.dead_lettered == 0

        figure("postgres kill: down for (s)", f"{down_s:.1f}")
        figure("postgres kill: relay not healthy after (s)", f"{relay_noticed:.1f}")
        figure("postgres kill: relay reason", relay_reason)
        figure("postgres kill: consumer not ready after (s)", f"{consumer_noticed:.1f}")
        figure("postgres kill: consumer reason", consumer_reason)
        figure("postgres kill: relay healthy after restart (s)", f"{relay_healed:.1f}")
        figure("postgres kill: projection converged after restart (s)", f"{converged_s:.1f}")
        figure(
            "postgres kill: events, published incl. repeats", f"{len(events)}, {relay.published}"
        )
        figure("postgres kill: consumer in-place retries", consumer.retries)


async def _terminate(pool: asyncpg.Pool) -> None:
    pool.terminate()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

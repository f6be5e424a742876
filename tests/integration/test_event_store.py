"""The event store on a real PostgreSQL: optimistic concurrency, outbox, streams (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.preferences.domain import OrgPreferences
from shared.contracts import (
    PREFERENCES_EVENTS,
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    PortalNameSet,
    PortalNameSetPayload,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool
from shared.eventstore import ConcurrencyConflict, append_events, load_stream

pytestmark = pytest.mark.integration

AGGREGATE = "org_preferences"
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def pool(fresh_database: Callable[..., Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    url = await fresh_database("eventstore")
    pool = await open_pool(url, min_size=2, max_size=4)
    try:
        await apply_schema(pool, EVENTSTORE_SQL)
        yield pool
    finally:
        await pool.close()


def cause(n: int = 0) -> Cause:
    return Cause(actor="admin-1", at=T0 + timedelta(seconds=n), correlation_id=f"corr-{n}")


async def outbox_event_ids(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY position")
    ids = []
    for row in rows:
        envelope = json.loads(row["value"])
        assert row["topic"] == PREFERENCES_EVENTS
        assert row["key"] == envelope["aggregate_id"].encode()
        ids.append(envelope["event_id"])
    return ids


async def wait_until_blocked_or_done(
    conn: asyncpg.Connection, pid: int, done: asyncio.Event
) -> None:
    """Return once backend `pid` waits for a lock another transaction holds, or `done`."""
    query = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)"
    async with asyncio.timeout(10):
        while not done.is_set():
            if await conn.fetchval(query, pid):
                return
            await asyncio.sleep(0.01)


async def test_two_writers_on_one_version_exactly_one_commits(pool: asyncpg.Pool) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    # Version N = 2: enabled, then named.
    async with pool.acquire() as conn, conn.transaction():
        state = OrgPreferences(org)
        first = state.set_mfa_policy(True, cause(1))
        state = OrgPreferences.from_events(org, first)  # type: ignore[arg-type]
        second = state.set_portal_name("Acme portal", cause(2))
        await append_events(conn, [*first, *second])

    barrier = asyncio.Barrier(2)
    pids: dict[str, int] = {}
    appended: dict[str, EventEnvelope] = {}
    outcome: dict[str, str] = {}
    appended_done = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def writer(name: str, other: str, enable: bool, monitor: asyncpg.Connection) -> None:
        async with pool.acquire() as conn:
            pids[name] = conn.get_server_pid()
            try:
                async with conn.transaction():
                    stream = await load_stream(conn, AGGREGATE, org)
                    state = OrgPreferences.from_events(org, stream)
                    assert state.version == 2
                    # Both have read version 2 before either writes version 3.
                    await barrier.wait()
                    events: list[EventEnvelope]
                    if enable:
                        events = [
                            MfaPolicyEnabled.new(
                                org_id=org,
                                aggregate_id=org,
                                aggregate_version=state.version + 1,
                                payload=Empty(),
                                cause=cause(3),
                            )
                        ]
                    else:
                        events = state.set_mfa_policy(False, cause(3))
                    assert [e.aggregate_version for e in events] == [3]
                    appended[name] = events[0]
                    await append_events(conn, events)
                    appended_done[name].set()
                    # Hold the commit until the rival's insert really waits on ours, so the
                    # two transactions provably overlap (or the rival's append got through,
                    # which the assertions below reject).
                    await wait_until_blocked_or_done(monitor, pids[other], appended_done[other])
                outcome[name] = "committed"
            except ConcurrencyConflict:
                outcome[name] = "conflict"

    # Side connections (the pool holds four) that watch each writer's locks.
    async with pool.acquire() as monitor_a, pool.acquire() as monitor_b:
        await asyncio.wait_for(
            asyncio.gather(
                writer("a", "b", True, monitor_a),
                writer("b", "a", False, monitor_b),
            ),
            timeout=20,
        )

    assert sorted(outcome.values()) == ["committed", "conflict"]
    assert pids["a"] != pids["b"]
    winner = next(name for name, result in outcome.items() if result == "committed")
    loser = "b" if winner == "a" else "a"

    async with pool.acquire() as conn:
        stream = await load_stream(conn, AGGREGATE, org)
        assert [e.aggregate_version for e in stream] == [1, 2, 3]
        assert stream[2] == appended[winner]
        assert stream[2].event_id != appended[loser].event_id
        assert type(stream[2]) is (MfaPolicyEnabled if winner == "a" else MfaPolicyDisabled)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE aggregate_id = $1 AND aggregate_version = 3",
                org,
            )
            == 1
        )
        ids = await outbox_event_ids(conn)
        assert ids == [str(e.event_id) for e in stream]
        assert str(appended[loser].event_id) not in ids


async def test_rolled_back_transaction_leaves_neither_event_nor_outbox_row(
    pool: asyncpg.Pool,
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    events = OrgPreferences(org).set_portal_name("Rolled back", cause(1))

    class Abort(Exception):
        pass

    async with pool.acquire() as conn:
        with pytest.raises(Abort):
            async with conn.transaction():
                await append_events(conn, events)
                # Inside the transaction both rows exist...
                assert await conn.fetchval("SELECT count(*) FROM events") == 1
                assert await outbox_event_ids(conn) == [str(events[0].event_id)]
                raise Abort
        # ...and the rollback takes both away.
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert await load_stream(conn, AGGREGATE, org) == []

        # A committed append of the same events then writes both, together.
        async with conn.transaction():
            await append_events(conn, events)
        assert [e.event_id for e in await load_stream(conn, AGGREGATE, org)] == [events[0].event_id]
        assert await outbox_event_ids(conn) == [str(events[0].event_id)]


async def test_load_stream_returns_the_appended_events_in_version_order(
    pool: asyncpg.Pool,
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    other = f"org-{uuid.uuid4().hex[:8]}"

    def make(aggregate_id: str, version: int) -> EventEnvelope:
        if version % 3 == 0:
            return PortalNameSet.new(
                org_id=aggregate_id,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                payload=PortalNameSetPayload(portal_name=f"Portal v{version} ✓"),
                cause=cause(version),
            )
        cls = MfaPolicyEnabled if version % 3 == 1 else MfaPolicyDisabled
        return cls.new(
            org_id=aggregate_id,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            payload=Empty(),
            cause=cause(version),
        )

    mine = [make(org, v) for v in range(1, 8)]
    theirs = [make(other, v) for v in range(1, 4)]
    # Same id, other aggregate type: must not leak into the org_preferences stream.
    contact = ContactCreated.new(
        org_id=org,
        aggregate_id=org,
        aggregate_version=1,
        payload=ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com"),
        cause=cause(0),
    )

    async with pool.acquire() as conn:
        # Stored out of version order and interleaved with other streams.
        async with conn.transaction():
            await append_events(conn, [mine[4], theirs[1], mine[0], mine[2]])
        async with conn.transaction():
            await append_events(conn, [contact, mine[6], theirs[0], mine[1]])
        async with conn.transaction():
            await append_events(conn, [mine[5], mine[3], theirs[2]])

        # No index scan to return rows in version order by luck: only ORDER BY may sort.
        await conn.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
        stream = await load_stream(conn, AGGREGATE, org)
        assert [e.aggregate_version for e in stream] == list(range(1, 8))
        assert stream == mine
        assert [type(e) for e in stream] == [type(e) for e in mine]
        assert stream[2].payload == PortalNameSetPayload(portal_name="Portal v3 ✓")
        assert stream[0].occurred_at == T0 + timedelta(seconds=1)

        assert await load_stream(conn, AGGREGATE, other) == theirs
        assert await load_stream(conn, "contact", org) == [contact]
        assert await load_stream(conn, AGGREGATE, "no-such-org") == []
        assert OrgPreferences.from_events(org, stream).version == 7

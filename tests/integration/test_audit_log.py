"""The audit consumer, killed mid-way through the log and restarted, stores every event once."""

from __future__ import annotations

from pathlib import Path
from random import Random

import pytest
from aiokafka import TopicPartition

from services.audit.adapters import AuditLog, tail
from shared.projection_offsets import stored_offsets
from tests.integration.streams import (
    Setup,
    ends_of,
    history,
    kill,
    produce,
    spawn_runner,
    until,
)

pytestmark = pytest.mark.integration


async def test_killed_mid_way_and_restarted_stores_every_event_exactly_once(
    setup: Setup, kafka_bootstrap: str, kafka_idempotence: bool, tmp_path: Path
) -> None:
    events = history(Random(11), orgs=40, contacts=400, total=8000)
    placed = await produce(setup.producer, setup.topics, events)
    # A publisher that crashed after sending sends again: the log holds duplicates.
    placed += await produce(setup.producer, setup.topics, events[:500])
    ends = ends_of(placed)

    async def stored_count() -> int:
        async with setup.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('audit_events') IS NOT NULL")
            return int(await conn.fetchval("SELECT count(*) FROM audit_events")) if exists else 0

    async def partly_done() -> bool:
        return 0 < await stored_count() < len(events) // 2

    first = await spawn_runner(
        setup, kafka_bootstrap, "unused", kafka_idempotence, tmp_path / "run1.log", ["--audit"]
    )
    try:
        await until(partly_done, within=60, what="part of the log stored", interval=0.01)
    finally:
        await kill(first)
    assert first.returncode == -9
    stopped_at = await stored_count()
    assert 0 < stopped_at < len(events)

    async def caught_up() -> bool:
        async with setup.pool.acquire() as conn:
            offsets = await stored_offsets(conn, AuditLog())
        return all(
            offsets.get(TopicPartition(topic, partition), 0) >= end
            for (topic, partition), end in ends.items()
        )

    second = await spawn_runner(
        setup, kafka_bootstrap, "unused", kafka_idempotence, tmp_path / "run2.log", ["--audit"]
    )
    try:
        await until(caught_up, within=90, what="the whole log stored")
    finally:
        await kill(second)

    async with setup.pool.acquire() as conn:
        rows = await tail(conn, limit=100_000)
    stored_ids = [envelope["event_id"] for _, envelope in rows]
    assert len(stored_ids) == len(set(stored_ids)), "no event stored twice"
    assert set(stored_ids) == {str(e.event_id) for e in events}, "every event stored"

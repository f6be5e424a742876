"""A projection decodes the next batches while it writes one: batches still apply in the
order they were fetched, and one that fails stops every batch after it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.projection import Delivered, ProjectionConsumer
from tests.unit.shared.test_projection_decoding import TRUST, record

TP = TopicPartition("portal.preferences.events", 0)


class Stop(Exception):
    """Ends the consumer's loop once every batch has been fetched and awaited."""


class FakeKafka:
    """Hands out the given batches, then nothing."""

    def __init__(self, batches: list[list[ConsumerRecord[bytes, bytes]]]) -> None:
        self._batches = list(batches)

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        await asyncio.sleep(0)
        return {TP: self._batches.pop(0)} if self._batches else {}


class NamedProjection:
    name = "pipeline-test"


def consumer_over(batches: list[list[ConsumerRecord[bytes, bytes]]]) -> ProjectionConsumer:
    consumer = ProjectionConsumer(
        bootstrap="127.0.0.1:1",
        topics=[TP.topic],
        pool=Any,  # type: ignore[arg-type]  # never reached: `_handle` is replaced
        projection=NamedProjection(),  # type: ignore[arg-type]
        deadletter=Any,  # type: ignore[arg-type]
        trust=TRUST,
    )
    consumer._consumer = FakeKafka(batches)  # type: ignore[assignment]

    async def caught_up() -> bool:
        raise Stop

    consumer._reached_start_high_water = caught_up  # type: ignore[method-assign]
    return consumer


def batches() -> list[list[ConsumerRecord[bytes, bytes]]]:
    # A large batch first (split over threads, slow to decode), then small ones that are
    # decoded long before it.
    return [[record(i) for i in range(2000)], [record(2000)], [record(2001)], [record(2002)]]


async def test_batches_apply_in_the_order_they_were_fetched() -> None:
    consumer = consumer_over(batches())
    applied: list[int] = []

    async def handle(decoded: list[Delivered]) -> None:
        await asyncio.sleep(0)
        applied.extend(d.record.offset for d in decoded)

    consumer._handle = handle  # type: ignore[method-assign]
    with pytest.raises(Stop):
        await consumer.run()

    assert applied == list(range(2003))


async def test_a_batch_that_fails_stops_every_batch_after_it() -> None:
    consumer = consumer_over(batches())
    applied: list[int] = []

    async def handle(decoded: list[Delivered]) -> None:
        if decoded[0].record.offset == 2000:
            # The small batch's decoding is long done: it must not let the next ones by.
            await asyncio.sleep(0.05)
            raise RuntimeError("this batch cannot be applied")
        applied.extend(d.record.offset for d in decoded)

    consumer._handle = handle  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await consumer.run()
    await asyncio.sleep(0.1)  # anything still running would apply meanwhile

    assert applied == list(range(2000))
    assert not consumer.ready

"""The relay's way to the producer: per partition, one batch at a time, stopping at a failure.

A plain producer pipelines: the records of one partition travel in several batches, and
when one batch fails (it expired while the broker was away) the batches behind it are
still sent. Without the idempotent producer (the dev broker refuses it) that puts later
events on the log before earlier ones, and the relay's retry cannot take them back —
measured in tests/faults/test_relay_heals.py. Here a partition's records are handed over
as one explicit batch at a time, the next only after the broker has the previous one,
and a failed batch fails every record queued behind it without sending it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

Headers = Sequence[tuple[str, bytes]]


@dataclass
class _Queued:
    key: bytes | None
    value: bytes | None
    headers: Headers
    delivered: asyncio.Future[RecordMetadata] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class InOrderSends:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._queues: dict[TopicPartition, deque[_Queued]] = {}
        self._senders: dict[TopicPartition, asyncio.Task[None]] = {}
        self._partitioner = DefaultPartitioner()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue a record; the future resolves once the broker has it (as `producer.send`)."""
        tp = TopicPartition(topic, await self._partition_of(topic, key))
        queued = _Queued(key, value, list(headers or ()))
        self._queues.setdefault(tp, deque()).append(queued)
        sender = self._senders.get(tp)
        if sender is None or sender.done():
            self._senders[tp] = asyncio.create_task(self._send_queued(tp))
        return queued.delivered

    async def _partition_of(self, topic: str, key: bytes | None) -> int:
        # The producer's own default partitioner over the same metadata: a key lands on
        # the partition a plain `send` would choose.
        partitions = sorted(await self._producer.partitions_for(topic))
        return int(self._partitioner(key, partitions, partitions))

    async def _send_queued(self, tp: TopicPartition) -> None:
        queue = self._queues[tp]
        await asyncio.sleep(0)  # let the caller queue the rest of its records first
        while queue:
            batch = self._producer.create_batch()
            taken: list[_Queued] = []
            while queue:
                head = queue[0]
                if (
                    batch.append(
                        key=head.key, value=head.value, timestamp=None, headers=head.headers
                    )
                    is None
                ):
                    break
                taken.append(queue.popleft())
            if not taken:
                _fail_all(queue, MessageSizeTooLargeError("a record does not fit in a batch"))
                return
            try:
                delivery = await self._producer.send_batch(batch, tp.topic, partition=tp.partition)
                first: RecordMetadata = await delivery
            except Exception as exc:  # the broker does not have this batch: send nothing after it
                _fail_all(taken, exc)
                _fail_all(queue, exc)
                return
            for n, queued in enumerate(taken):
                if not queued.delivered.done():
                    queued.delivered.set_result(first._replace(offset=first.offset + n))

    async def close(self) -> None:
        """Stop sending; what was queued and not handed over is dropped (the relay's
        rows stay unsent and are published again by the next run)."""
        for sender in self._senders.values():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        for queue in self._queues.values():
            while queue:
                queue.popleft().delivered.cancel()


def _fail_all(queued: deque[_Queued] | list[_Queued], exc: BaseException) -> None:
    while queued:
        item = queued.popleft() if isinstance(queued, deque) else queued.pop(0)
        if not item.delivered.done():
            item.delivered.set_exception(exc)

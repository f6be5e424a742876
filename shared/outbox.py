"""The outbox relay: publishes stored events to Kafka in order and marks them sent.

A crash between publishing and marking republishes the tail on restart; consumers treat
a duplicate as a no-op, so at-least-once is enough and nothing is ever lost. Each record is
signed as it is published, over the exact key and value bytes sent (DESIGN.md §11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.eventstore import OUTBOX_CHANNEL, headers_from_json
from shared.signing import RecordSigner

log = logging.getLogger(__name__)

# Only one relay per database publishes at a time, so the outbox order is the publish order.
_RELAY_LOCK = 0x52454C59


class OutboxRelay:
    def __init__(
        self,
        database_url: str,
        producer: AIOKafkaProducer,
        signer: RecordSigner,
        *,
        poll_interval_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._database_url = database_url
        self._producer = producer
        self._signer = signer
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        """Publish until cancelled."""
        conn: asyncpg.Connection = await asyncpg.connect(self._database_url)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                log.info("another relay holds the outbox; waiting")
                await asyncio.sleep(self._poll_interval_s)
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            while True:
                self._wakeup.clear()
                if await self.publish_pending(conn) == self._batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    # NOTIFY wakes us at once; the poll is the fallback for a lost notification.
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
        finally:
            await conn.close()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT position, topic, key, value, headers FROM outbox"
            " WHERE sent_at IS NULL ORDER BY position LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        deliveries = [
            await self._producer.send(
                row["topic"],
                value=row["value"],
                key=row["key"],
                headers=[
                    *headers_from_json(row["headers"]),
                    *self._signer.headers(row["key"], row["value"]),
                ],
            )
            for row in rows
        ]
        await asyncio.gather(*deliveries)
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE position = ANY($1::bigint[])",
            [row["position"] for row in rows],
        )
        self.published += len(rows)
        return len(rows)

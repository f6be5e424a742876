"""The outbox relay: publishes stored events to Kafka in order and marks them sent.

A crash between publishing and marking republishes the tail on restart; consumers treat
a duplicate as a no-op, so at-least-once is enough and nothing is ever lost. Each record is
signed as it is published, over the exact key and value bytes sent (DESIGN.md §11).

The relay never gives up: a broker or database failure is retried with back-off, on a
fresh connection that takes the relay lock again. While it cannot publish, or its
backlog does not move, `healthy` is false and `reason` says why (services' /readyz).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from shared.backoff import Backoff
from shared.eventstore import OUTBOX_CHANNEL, headers_from_json
from shared.in_order_sends import InOrderSends
from shared.relay_health import RelayHealth, RelayMetrics
from shared.signing import RecordSigner
from shared.transient import failure_name, is_transient_database_error

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
        name: str = "relay",
        stuck_after_s: float = 15.0,
        watch_interval_s: float = 2.0,
        cycle_timeout_s: float = 90.0,
        retry: Backoff | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._database_url = database_url
        # Per partition, in order even when a batch fails (shared/in_order_sends.py).
        self._producer = InOrderSends(producer)
        self._signer = signer
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()
        self.published = 0
        # Healing: how trouble is noticed (backlog watched every `watch_interval_s`; stuck
        # when its oldest row has not moved for `stuck_after_s`) and how retries wait.
        self.health = RelayHealth(name, stuck_after_s=stuck_after_s)
        self._watch_interval_s = watch_interval_s
        # A cycle that neither succeeds nor fails within this is abandoned and retried.
        self._cycle_timeout_s = cycle_timeout_s
        self._retry = retry or Backoff(first_s=0.2, cap_s=10.0)
        if registry is not None:
            registry.register(RelayMetrics(self.health))

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    @property
    def reason(self) -> str | None:
        """Why the relay cannot publish right now (None while it can)."""
        reason = self.health.reason
        return None if reason is None else f"outbox relay {self.health.name}: {reason}"

    async def run(self) -> None:
        """Publish until cancelled. Never returns otherwise: every failure is retried."""
        watcher = asyncio.create_task(self._watch_backlog(), name=f"{self.health.name}-backlog")
        try:
            while True:
                try:
                    await self._publish_while_connected()
                except Exception as exc:  # CancelledError is not one: it ends the relay
                    self.health.failed(_why_not_publishing(exc))
                    log.debug("outbox relay %s: %s; retrying", self.health.name, failure_name(exc))
                    await self._retry.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._producer.close()

    async def _publish_while_connected(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._database_url, timeout=10)
        try:
            # A connection that dies while we wait for NOTIFY wakes us to find out at once.
            conn.add_termination_listener(self._on_notify)
            waiting_logged = False
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                self._working()
                if not waiting_logged:
                    log.info("another relay holds the outbox; waiting")
                    waiting_logged = True
                await asyncio.sleep(self._poll_interval_s)
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            while True:
                self._wakeup.clear()
                async with asyncio.timeout(self._cycle_timeout_s):
                    published = await self.publish_pending(conn)
                self._working(published)
                if published == self._batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    # NOTIFY wakes us at once; the poll is the fallback for a lost notification.
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
        finally:
            await _close(conn)

    def _working(self, published: int = 0) -> None:
        self.health.working(published)
        self._retry.reset()

    async def _watch_backlog(self) -> None:
        """Measure the backlog on a connection of its own, so a stalled publish shows."""
        retry = Backoff(first_s=self._retry.first_s, cap_s=self._retry.cap_s)
        while True:
            try:
                conn: asyncpg.Connection = await asyncpg.connect(self._database_url, timeout=10)
                try:
                    while True:
                        row = await conn.fetchrow(_BACKLOG_SQL, timeout=10)
                        assert row is not None
                        self.health.backlog(row["rows"], row["oldest"], row["age_s"])
                        retry.reset()
                        await asyncio.sleep(self._watch_interval_s)
                finally:
                    await _close(conn)
            except Exception:  # PostgreSQL away: the publishing loop reports that
                self.health.backlog_unknown()
                await retry.wait()

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


_BACKLOG_SQL = (
    "SELECT count(*) AS rows, min(position) AS oldest,"
    " extract(epoch FROM clock_timestamp() - min(created_at))::float8 AS age_s"
    " FROM outbox WHERE sent_at IS NULL"
)


def _why_not_publishing(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "relay timed out: no answer from PostgreSQL or Kafka in time"
    if is_transient_database_error(exc):
        return f"PostgreSQL unavailable: {failure_name(exc)}"
    if isinstance(exc, KafkaError):
        return f"cannot publish to Kafka: {failure_name(exc)}"
    return f"relay failing: {failure_name(exc)}"


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:  # already broken: drop it without the goodbye
        conn.terminate()

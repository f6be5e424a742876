"""Idempotent projection consumer: batches of events applied with their offsets in one transaction.

Kafka's own committed offsets are not used: the projection's position lives in its
database beside the rows it explains, so a crash at any point replays exactly the
batches whose transaction did not commit (DESIGN.md §4). A record is applied only if a
key of its aggregate type's owner, in the consumer's trust map, signed it (DESIGN.md §11);
anything else is dead-lettered with the reason and counted.

Failures are sorted (docs/reliability.md): a record that can never apply (it fails its
contract, or is too large to be an event) goes to the dead-letter topic; anything that
may succeed later (PostgreSQL or Kafka away, a cancelled statement, a lock timeout, a
failed dead-letter send) is retried in place with back-off, and the projection is not
ready meanwhile. Nothing that may apply later is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import CollectorRegistry, Counter

from shared.backoff import Backoff
from shared.contracts import DEADLETTER, Event, EventRejected
from shared.observability import tracing
from shared.projection_metrics import ProjectionMetrics
from shared.projection_offsets import HasOffsets, store_offsets, stored_offsets
from shared.read_your_writes import sleep_at_most
from shared.signing import (
    BAD_SIGNATURE,
    UNKNOWN_SIGNER,
    UNSIGNED,
    WRONG_SIGNER,
    RecordRefused,
    TrustMap,
    verified_event,
)
from shared.transient import failure_name, is_transient

log = logging.getLogger(__name__)

DEAD_LETTERED = Counter(
    "portal_mfa_deadlettered_records",
    "Records sent to the dead-letter topic instead of being applied",
    ["consumer", "reason"],
)

QUIET_POLLS_TO_BE_CAUGHT_UP = 3
# No event comes near this; a record past it is refused unread and dead-lettered as a
# reference, so the dead-letter send stays far below the broker's message size limit
# (1 MiB by default) whatever arrived.
MAX_RECORD_BYTES = 512 * 1024
# The part of a huge key kept in a dead letter.
_MAX_DEADLETTER_KEY_BYTES = 1024
# One decoding thread per core; handing over to a thread costs, so small batches take one.
_DECODE_THREADS = os.cpu_count() or 1
_MIN_RECORDS_PER_THREAD = 200


class Projection(HasOffsets, Protocol):
    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        """Apply events in order; an event already applied must change nothing."""


class Delivered(NamedTuple):
    """A record and what reading it gave: its event, or why it is refused.

    A tuple, not a frozen dataclass: one is made per record, on the decoding threads,
    where everything that holds the GIL slows the other threads down."""

    record: ConsumerRecord[bytes, bytes]
    event: Event | None
    error: str | None


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: ProjectionConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Nothing may be fetched before the seek, so while PostgreSQL is away this waits.
        await self._owner.retry_in_place(
            "reading stored offsets", lambda: self._owner.seek_assigned(list(assigned))
        )


class ProjectionConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        topics: Sequence[str],
        pool: asyncpg.Pool,
        projection: Projection,
        deadletter: AIOKafkaProducer,
        trust: TrustMap,
        group_id: str | None = None,
        group_instance_id: str | None = None,
        batch_size: int = 5000,
        deadletter_topic: str = DEADLETTER,
        shared_lock: int | None = None,
        fetch_max_wait_ms: int = 500,
        retry_first_s: float = 0.2,
        retry_cap_s: float = 10.0,
        security: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._deadletter_topic = deadletter_topic
        self._trust = trust
        self._retry_first_s, self._retry_cap_s = retry_first_s, retry_cap_s
        # An advisory lock every batch takes shared, first thing: maintenance (a rebuild's
        # swap) takes it exclusively to pause this consumer between batches.
        self._shared_lock = shared_lock
        self._topics = list(topics)
        self._pool = pool
        self._projection = projection
        self._deadletter = deadletter
        self._batch_size = batch_size
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            # Static membership: a restarted replica takes its partitions back at once
            # instead of waiting for the group to notice the old one is gone.
            group_instance_id=group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_max_bytes=32 * 1024 * 1024,
            # How this process authenticates to the brokers (shared.kafka.security_options).
            **(security or {}),
        )
        self._group = group_id is not None
        self._start_high_water: dict[TopicPartition, int] = {}
        self._caught_up = False
        self._failed = False
        # Why the consumer is waiting to try again (None while it is not).
        self._retrying: str | None = None
        # After an outage, ready again only once caught up with what arrived meanwhile.
        self._refresh_high_water = False
        self.applied = 0
        self.dead_lettered = 0
        self.retries = 0
        # For lag metrics: the next offset to apply per partition (as committed), and when
        # the newest applied record was produced (epoch seconds).
        self._applied_up_to: dict[TopicPartition, int] = {}
        self.newest_applied_at: float | None = None
        self.started_at = time.time()
        # Set (and replaced) after each applied batch: readers waiting for a write
        # position (shared.read_your_writes) look again then, not on a timer alone.
        self._batch_done = asyncio.Event()
        if registry is not None:
            registry.register(ProjectionMetrics(self))

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._consumer.start()
        if self._group:
            self._consumer.subscribe(self._topics, listener=_SeekToStoredOffsets(self))
        else:
            partitions = [
                TopicPartition(topic, p)
                for topic in self._topics
                for p in sorted(self._consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                await self._consumer.force_metadata_update()
                partitions = [
                    TopicPartition(topic, p)
                    for topic in self._topics
                    for p in sorted(self._consumer.partitions_for_topic(topic) or ())
                ]
            self._consumer.assign(partitions)
            await self.seek_assigned(partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        """Consume until cancelled; a failure marks the projection not ready, then re-raises."""
        quiet = 0
        # Batch n is written while batch n+1 is fetched and decoded: the CPU work and the
        # database round trips overlap, and batches still apply strictly one after another.
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                records = [r for part in batch.values() for r in part]
                if records:
                    quiet = 0
                    decoded = await _decoded(records, self._trust)
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._handle(decoded))
                elif not self._caught_up:
                    if writing is not None:
                        await writing
                        writing = None
                    # Several empty fetches in a row, not one: on a loaded machine a single
                    # poll can time out before the fetch that would have returned records.
                    quiet += 1
                    if quiet >= QUIET_POLLS_TO_BE_CAUGHT_UP:
                        self._caught_up = await self._reached_start_high_water()
                elif writing is not None and writing.done():
                    await writing
                    writing = None
        except BaseException as exc:
            if writing is not None and not writing.done():
                writing.cancel()
            if not isinstance(exc, asyncio.CancelledError):
                self._failed = True
                log.exception("projection %s stopped", self._projection.name)
            raise

    async def run_until_cancelled(self, *, first_retry_s: float | None = None) -> None:
        """`run`, restarted after any failure `run` does not heal in place, from the stored
        offsets, with back-off; forever. While it is down, and until it has caught up
        again, the projection is not ready."""
        backoff = Backoff(first_retry_s or self._retry_first_s, self._retry_cap_s)
        while True:
            started = time.monotonic()
            try:
                await self.run()
            except Exception as exc:  # logged by run; every failure is retried
                if time.monotonic() - started > 60:
                    backoff.reset()
                self._retrying = f"stopped: {failure_name(exc)}"
                # Forget the in-memory position before going on: what the failed batch
                # read was not applied. Until that seek succeeds, nothing runs.
                while True:
                    await backoff.wait()
                    try:
                        await self.seek_assigned(list(self._consumer.assignment()))
                        break
                    except Exception:  # the database or broker is still away
                        log.warning("projection %s: cannot resume yet", self._projection.name)
                self._caught_up = False
                self._failed = False
                self._retrying = None

    async def retry_in_place(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run `attempt` until it succeeds, waiting with back-off after each transient
        failure; anything else is raised. Not ready while it waits; one log line when it
        starts failing and one when it recovers, not one per try."""
        backoff = Backoff(self._retry_first_s, self._retry_cap_s)
        failing_since: float | None = None
        while True:
            try:
                await attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.retries += 1
                reason = f"{what} failed, retrying: {failure_name(exc)}"
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("projection %s: %s", self._projection.name, reason)
                self._retrying = reason
                # What arrives during the outage must be applied before we are ready again.
                self._caught_up = False
                self._refresh_high_water = True
                await backoff.wait()
                continue
            if failing_since is not None:
                log.warning(
                    "projection %s: %s recovered after %.1f s",
                    self._projection.name,
                    what,
                    time.monotonic() - failing_since,
                )
                self._retrying = None
            return

    async def seek_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._pool.acquire() as conn:
            stored = await stored_offsets(conn, self._projection)
        for tp in assigned:
            self._applied_up_to[tp] = stored.get(tp, 0)
            if tp in stored:
                self._consumer.seek(tp, stored[tp])
            else:
                await self._consumer.seek_to_beginning(tp)
        if assigned:
            ends = await self._consumer.end_offsets(assigned)
            self._start_high_water.update(ends)

    # --- readiness ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._caught_up and not self._failed and self._retrying is None

    @property
    def reason(self) -> str | None:
        """Why the projection is not ready (None when it is)."""
        if self._retrying is not None:
            return f"projection {self._projection.name}: {self._retrying}"
        if self._failed:
            return f"projection {self._projection.name} stopped; restarting"
        if not self._caught_up:
            return f"projection {self._projection.name} not caught up"
        return None

    async def _reached_start_high_water(self) -> bool:
        # The dev broker under-reports the high-water mark (DESIGN.md §7), so being past it
        # is not enough on its own: the caller also saw an empty fetch at this position.
        assigned = self._consumer.assignment()
        if not assigned or not self._start_high_water:
            return False
        if self._refresh_high_water:
            self._start_high_water.update(await self._consumer.end_offsets(list(assigned)))
            self._refresh_high_water = False
        for tp in assigned:
            if await self._consumer.position(tp) < self._start_high_water.get(tp, 0):
                return False
        return True

    @property
    def name(self) -> str:
        return self._projection.name

    async def batch_applied(self, timeout_s: float) -> None:
        """Return after the next batch this consumer applies, or after `timeout_s`."""
        await sleep_at_most(self._batch_done, timeout_s)

    def _announce_batch(self) -> None:
        done, self._batch_done = self._batch_done, asyncio.Event()
        done.set()

    def lag_records(self) -> int:
        """Records on the broker not yet applied, by what is known without a round trip."""
        behind = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                high = self._start_high_water.get(tp, 0)
            behind += max(0, high - self._applied_up_to.get(tp, 0))
        return behind

    async def lag(self) -> dict[str, int]:
        lags: dict[str, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                high = self._start_high_water.get(tp, 0)
            lags[f"{tp.topic}/{tp.partition}"] = max(0, high - await self._consumer.position(tp))
        return lags

    # --- applying -------------------------------------------------------------------------

    async def _handle(self, decoded: list[Delivered]) -> None:
        # The same batch, again and again, until it is applied: its offsets never move
        # past what did not apply, and no later batch is applied before it.
        await self.retry_in_place("applying a batch", lambda: self._apply_batch(decoded))

    async def _apply_batch(self, decoded: list[Delivered]) -> None:
        started_ns = time.time_ns()
        async with self._pool.acquire() as conn, conn.transaction():
            if self._shared_lock is not None:
                await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", self._shared_lock)
            # Locking the stored offsets and skipping what they already cover makes a batch
            # fetched before a seek (or by a replica during a rebalance) a no-op.
            stored = await stored_offsets(conn, self._projection, for_update=True)
            # Keyed by plain tuples: a TopicPartition per record costs more than the check.
            floor = {(tp.topic, tp.partition): offset for tp, offset in stored.items()}
            delivered = [
                d
                for d in decoded
                if d.record.offset >= floor.get((d.record.topic, d.record.partition), 0)
            ]
            if not delivered:
                return
            rejected = [d for d in delivered if d.event is None]
            if rejected:
                # A failed send raises, and the whole batch is tried again: never skipped.
                await self._dead_letter(rejected)
            valid = [d for d in delivered if d.event is not None]
            events = [d.event for d in delivered if d.event is not None]
            try:
                async with conn.transaction():
                    await self._projection.apply(conn, events)
            except Exception as exc:
                if is_transient(exc) or not isinstance(exc, asyncpg.PostgresError):
                    raise
                # Find the one that fails, and why: apply one by one.
                await self._apply_one_by_one(conn, valid)
            applied_up_to = _next_offsets([d.record for d in delivered])
            await store_offsets(conn, self._projection, applied_up_to)
        self.applied += len(valid)
        self._applied_up_to.update(applied_up_to)
        self.newest_applied_at = max(d.record.timestamp for d in delivered) / 1000
        tracing.applied(self._projection.name, _traced(valid), started_ns)
        self._announce_batch()

    async def _apply_one_by_one(self, conn: asyncpg.Connection, valid: list[Delivered]) -> None:
        for item in valid:
            assert item.event is not None
            try:
                async with conn.transaction():
                    await self._projection.apply(conn, [item.event])
            except asyncpg.DataError as exc:
                # Class 22: this record's values cannot be stored, now or ever.
                failure = f"apply failed: {failure_name(exc)}"
                await self._dead_letter([Delivered(item.record, item.event, failure)])
            # Anything else may apply later (a transient outage, or a fault a fix or an
            # operator removes): it propagates, and the batch waits for it (fail closed).

    async def _dead_letter(self, rejected: list[Delivered]) -> None:
        sends = []
        for item in rejected:
            r = item.record
            headers = [
                ("error", (item.error or "rejected").encode()),
                ("original_topic", r.topic.encode()),
                ("original_partition", str(r.partition).encode()),
                ("original_offset", str(r.offset).encode()),
                ("consumer", self._projection.name.encode()),
            ]
            value, key = r.value, r.key
            if _record_bytes(r) > MAX_RECORD_BYTES:
                # A reference, never the record: the send cannot fail on size.
                value, key, digest = _reference(r, item.error or "rejected")
                headers += [("size", str(_record_bytes(r)).encode()), ("sha256", digest)]
            sends.append(
                await self._deadletter.send(
                    self._deadletter_topic, value=value, key=key, headers=headers
                )
            )
            log.warning("dead-lettered %s/%s@%s: %s", r.topic, r.partition, r.offset, item.error)
            DEAD_LETTERED.labels(self._projection.name, _reason_label(item.error)).inc()
        await asyncio.gather(*sends)
        self.dead_lettered += len(rejected)


def _traced(
    valid: list[Delivered],
) -> Iterator[tuple[Sequence[tuple[str, bytes]], dict[str, str | int]]]:
    """Each applied record's headers (its trace), and what its span names."""
    for item in valid:
        assert item.event is not None
        yield (
            item.record.headers or (),
            {
                "portal_mfa.event_type": item.event.event_type,
                "portal_mfa.aggregate_id": item.event.aggregate_id,
                "portal_mfa.org_id": item.event.org_id,
                "messaging.system": "kafka",
                "messaging.destination.name": item.record.topic,
                "messaging.kafka.offset": item.record.offset,
            },
        )


def _record_bytes(record: ConsumerRecord[bytes, bytes]) -> int:
    # A plain loop, not sum() over a generator: every record of a rebuild is measured on
    # the decoding threads, holding the GIL.
    size = len(record.value or b"") + len(record.key or b"")
    for name, value in record.headers or ():
        size += len(name) + len(value or b"")
    return size


def _refuse_oversized(record: ConsumerRecord[bytes, bytes]) -> Delivered | None:
    """A record too large to be an event: refused unread."""
    size = _record_bytes(record)
    if size <= MAX_RECORD_BYTES:
        return None
    return Delivered(record, None, f"record of {size} bytes exceeds {MAX_RECORD_BYTES}")


def _reference(
    record: ConsumerRecord[bytes, bytes], error: str
) -> tuple[bytes, bytes | None, bytes]:
    """(value, key, sha256 hex) of a dead letter that points at `record` instead of holding it."""
    digest = hashlib.sha256(record.value or b"").hexdigest()
    value = json.dumps(
        {
            "reference": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            "size": _record_bytes(record),
            "value_bytes": len(record.value or b""),
            "sha256": digest,
            "error": error,
        }
    ).encode()
    key = record.key[:_MAX_DEADLETTER_KEY_BYTES] if record.key is not None else None
    return value, key, digest.encode()


async def _decoded(records: list[ConsumerRecord[bytes, bytes]], trust: TrustMap) -> list[Delivered]:
    """Every record checked and parsed, off the event loop, in order.

    The signature check (libsodium) lets go of the GIL, so the batch is split over one
    thread per core: the checks run side by side with each other, with the batch being
    written, and with auth's HTTP requests. A batch's checks are most of a rebuild's CPU.
    """
    chunks = min(_DECODE_THREADS, max(1, len(records) // _MIN_RECORDS_PER_THREAD))
    if chunks == 1:
        return await asyncio.to_thread(_decode_all, records, trust)
    size = -(-len(records) // chunks)
    parts = await asyncio.gather(
        *(
            asyncio.to_thread(_decode_all, records[i : i + size], trust)
            for i in range(0, len(records), size)
        )
    )
    return [d for part in parts for d in part]


def _decode_all(records: list[ConsumerRecord[bytes, bytes]], trust: TrustMap) -> list[Delivered]:
    return [_refuse_oversized(r) or _decode(r, trust) for r in records]


def _decode(record: ConsumerRecord[bytes, bytes], trust: TrustMap) -> Delivered:
    if record.value is None:
        return Delivered(record, None, "empty message")
    try:
        event = verified_event(trust, record.key, record.value, record.headers)
    except RecordRefused as exc:
        return Delivered(record, None, exc.reason)
    except EventRejected as exc:
        return Delivered(record, None, str(exc))
    return Delivered(record, event, None)


def _reason_label(error: str | None) -> str:
    """A metric label from a dead-letter reason: signature reasons as they are, else a class."""
    reason = error or "rejected"
    if reason in (UNSIGNED, UNKNOWN_SIGNER, BAD_SIGNATURE) or reason.startswith(WRONG_SIGNER):
        return reason
    if reason.startswith("apply failed"):
        return "apply failed"
    if reason.startswith("record of"):
        return "oversized"
    # Content errors quote field names: one label for all of them keeps the series few.
    return reason if reason == "empty message" else "invalid event"


def _next_offsets(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
    offsets: dict[tuple[str, int], int] = {}
    for r in records:
        partition, end = (r.topic, r.partition), r.offset + 1
        if end > offsets.get(partition, 0):
            offsets[partition] = end
    return {TopicPartition(topic, p): end for (topic, p), end in offsets.items()}

"""Projection rebuild throughput beside a bare aiokafka → asyncpg COPY loop (DESIGN.md §9).

    .venv/bin/python -m bench.projection_rebuild [--events 1000000]

One run: start an embedded broker and PostgreSQL (or use PORTAL_MFA_KAFKA_BOOTSTRAP /
PORTAL_MFA_DATABASE_URL), generate N events (≈1% org policy events, the rest contact
events), produce them to fresh topics, then measure, in this order and over the same
records:

1. bare: the thinnest loop doing the same I/O: an aiokafka consumer (no group, every
   partition, from the beginning) COPYing (event_id, raw value) into a table in batches
   (§9's baseline, the one the verdict is on);
2. checking: the same loop checking each record's Ed25519 signature before its COPY, on
   one thread per core (the design checks every record, so this is the thinnest code
   that does the rebuild's mandatory work; `--no-checking-baseline` skips it);
3. rebuild: `services.auth.entrypoints.rebuild.rebuild(..., swap=False)` into a fresh schema.

Generating and producing are not measured. Completion is counted in records, not taken
from end offsets: the dev broker under-reports its high-water mark (DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import machine
from bench.rows import Row, ratio
from portal_mfa.dev_process import free_port
from portal_mfa.infra import (
    EmbeddedBroker,
    EmbeddedPostgres,
    drop_database,
    ensure_database,
    ensure_topics,
)
from services.auth.entrypoints.rebuild import Progress, rebuild
from shared.contracts import (
    DEADLETTER,
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    Empty,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
    PortalNameSet,
    PortalNameSetPayload,
    parse_event,
)
from shared.db import open_pool
from shared.signing import RecordSigner, SignedRecord, TrustMap

TARGET_EVENTS_PER_S = 25_000
TARGET_RATIO = 0.50
CHECKING_THREADS = os.cpu_count() or 1
BARE = "bare aiokafka → asyncpg COPY loop"
CHECKING = "bare loop + each record's signature checked"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)  # the generated history's length
REBUILD_SCHEMA = "bench_rebuild"
# Pydantic writes the envelope's fields in declaration order: event_id comes first.
EVENT_ID_PREFIX = b'{"event_id":"'

# Records are signed as the services sign them, so the rebuild verifies every one.
SIGNERS = {
    "preferences": RecordSigner.generate("bench-preferences"),
    "contacts": RecordSigner.generate("bench-contacts"),
}

Headers = list[tuple[str, bytes]]
Message = tuple[str, bytes, bytes, Headers]  # topic, key, value, headers


# --- the workload -----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    messages: list[Message]
    orgs: int
    contacts: int
    policy_events: int
    contact_events: int


def _spread(total: int, among: int) -> list[int]:
    """`total` split over `among` as evenly as whole numbers go."""
    base, extra = divmod(total, among)
    return [base + (1 if i < extra else 0) for i in range(among)]


def generate(count: int, preferences_topic: str, contacts_topic: str, seed: int) -> Workload:
    """`count` events, pre-serialized: every aggregate's versions gap-free and in order.

    About 1% are org policy events (one org per 1,000 events); the rest are contact
    events for count/5 contacts: ContactCreated v1, PortalAccessGranted v2, MfaReset
    v3.., with one contact in 50 revoked and one in 50 deleted at the end. Aggregates'
    histories are interleaved at random in time, as a real log would be.
    """
    rng = Random(seed)

    def new_uuid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    policy_total = max(1, round(count * 0.01)) if count >= 2 else count
    contact_total = count - policy_total
    orgs = max(1, count // 1000)
    contacts = max(1, count // 5) if contact_total else 0
    org_ids = [f"org-{rng.getrandbits(32):08x}" for _ in range(orgs)]
    contact_ids = [str(new_uuid()) for _ in range(contacts)]
    per_org = _spread(policy_total, orgs)
    per_contact = _spread(contact_total, contacts) if contacts else []

    # (time, aggregate, version): aggregate < orgs is an org, else contact (aggregate - orgs).
    slots: list[tuple[float, int, int]] = []
    for aggregate, n in enumerate(per_org + per_contact):
        times = sorted(rng.random() for _ in range(n))
        slots.extend((t, aggregate, version) for version, t in enumerate(times, start=1))
    slots.sort()

    messages: list[Message] = []
    for t, aggregate, version in slots:
        at = T0 + SPAN * t
        if aggregate < orgs:
            event = _policy_event(org_ids[aggregate], aggregate, version, at, new_uuid())
            topic = preferences_topic
        else:
            i = aggregate - orgs
            event = _contact_event(
                contact_ids[i],
                org_ids[i % orgs],
                i,
                version,
                per_contact[i],
                at,
                new_uuid(),
                rng,
            )
            topic = contacts_topic
        value = event.to_json()
        if len(messages) % 997 == 0:
            # Built without validation for speed: check that a sample reads back the same.
            assert parse_event(value).to_json() == value, value
        key = event.kafka_key()
        signer = SIGNERS["preferences" if aggregate < orgs else "contacts"]
        messages.append((topic, key, value, event.kafka_headers() + signer.headers(key, value)))
    return Workload(messages, orgs, contacts, policy_total, contact_total)


def _envelope(
    cls: type[EventEnvelope],
    *,
    org_id: str,
    aggregate_id: str,
    version: int,
    at: datetime,
    event_id: uuid.UUID,
    actor: str,
    payload: object,
) -> EventEnvelope:
    return cls.model_construct(
        event_id=event_id,
        event_type=cls.model_fields["event_type"].default,
        schema_version=cls.current_schema_version,
        occurred_at=at,
        org_id=org_id,
        aggregate_type=cls.aggregate_kind,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        correlation_id=str(uuid.UUID(int=event_id.int ^ 0x5A5A, version=4)),
        causation_id=None,
        actor=actor,
        payload=payload,
    )


def _policy_event(
    org_id: str, index: int, version: int, at: datetime, event_id: uuid.UUID
) -> EventEnvelope:
    cls: type[EventEnvelope]
    payload: object = Empty.model_construct()
    if version == 1 or version % 7 == 0:
        cls = PortalNameSet
        payload = PortalNameSetPayload.model_construct(portal_name=f"Org {index} portal v{version}")
    elif version % 2 == 0:
        cls = MfaPolicyEnabled
    else:
        cls = MfaPolicyDisabled
    return _envelope(
        cls,
        org_id=org_id,
        aggregate_id=org_id,
        version=version,
        at=at,
        event_id=event_id,
        actor=f"admin@{org_id}.example",
        payload=payload,
    )


def _contact_event(
    contact_id: str,
    org_id: str,
    index: int,
    version: int,
    last: int,
    at: datetime,
    event_id: uuid.UUID,
    rng: Random,
) -> EventEnvelope:
    email = f"Contact.{index}@{org_id}.example"
    cls: type[EventEnvelope]
    payload: object = Empty.model_construct()
    if version == 1:
        cls = ContactCreated
        payload = ContactCreatedPayload.model_construct(
            kind="vendor" if index % 4 == 0 else "customer",
            display_name=f"Contact {index}",
            email=email,
        )
    elif version == 2:
        cls = PortalAccessGranted
        payload = PortalAccessGrantedPayload.model_construct(
            email=email.lower(),
            invitation_hash=f"{rng.getrandbits(256):064x}",
            expires_at=at + timedelta(days=14),
        )
    elif version == last and last >= 4 and index % 50 == 0:
        cls = ContactDeleted
    elif version == last and last >= 4 and index % 50 == 1:
        cls = PortalAccessRevoked
    else:
        cls = MfaReset
        payload = MfaResetPayload.model_construct(mfa_epoch=version - 2, reason="lost device")
    return _envelope(
        cls,
        org_id=org_id,
        aggregate_id=contact_id,
        version=version,
        at=at,
        event_id=event_id,
        actor="admin@portal.example",
        payload=payload,
    )


async def produce(bootstrap: str, messages: Sequence[Message], *, idempotent: bool) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=50,
        max_batch_size=512 * 1024,
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=120_000,
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[object]] = []
        for topic, key, value, headers in messages:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


# --- the measurements -------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    events: int
    seconds: float
    # CPU seconds per process group while it ran: on a shared machine the rate moves with
    # the load, the CPU per event much less.
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_us_per_event(self) -> dict[str, float]:
        return {g: s / self.events * 1e6 for g, s in self.cpu.items()} if self.events else {}

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class CpuMeter:
    """CPU time of this process (every thread), PostgreSQL and the broker, for one phase."""

    def __init__(self, postgres_pid: int | None, broker_pid: int | None) -> None:
        self._pids = {"postgres": postgres_pid, "broker": broker_pid}

    def read(self) -> dict[str, float]:
        times = os.times()
        found = {"this process": times.user + times.system}
        for group, pid in self._pids.items():
            if pid is not None:
                found[group] = _tree_cpu(pid)
        return found

    def since(self, before: dict[str, float]) -> dict[str, float]:
        return {g: v - before[g] for g, v in self.read().items() if g in before}


def _tree_cpu(pid: int) -> float:
    """A server's CPU seconds: its own, its live children's, and those it has reaped
    (PostgreSQL's backends exit with their connections)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        t = root.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    return total


def _event_id(value: bytes) -> str:
    if value.startswith(EVENT_ID_PREFIX):
        return value[13:49].decode()
    return str(json.loads(value)["event_id"])


async def bare_loop(
    bootstrap: str,
    topics: Sequence[str],
    url: str,
    expected: int,
    batch_size: int,
    meter: CpuMeter,
    *,
    table: str = "bare_events",
    checking: TrustMap | None = None,
) -> Measured:
    """aiokafka → asyncpg COPY, nothing else: read every record once, copy it raw.

    With `checking`, each record's signature is checked first (the same call the
    projection makes), the batch split over one thread per core as the projection splits
    it (libsodium lets go of the GIL): what the rebuild would cost if checking were all it
    added.
    """
    conn = await asyncpg.connect(url)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # As the projection consumer fetches, so both read the broker the same way.
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    try:
        cpu_before = meter.read()
        started = time.perf_counter()
        await conn.execute(f"CREATE TABLE {table} (event_id uuid NOT NULL, value bytea NOT NULL)")
        await consumer.start()
        partitions = await _all_partitions(consumer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        idle_since = time.perf_counter()
        while read < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=batch_size)
            records = [r for part in batch.values() for r in part]
            if checking is not None and records:
                await _check_all(records, checking)
            rows = [(_event_id(r.value), r.value) for r in records]
            if rows:
                await conn.copy_records_to_table(table, records=rows, columns=("event_id", "value"))
                read += len(rows)
                idle_since = time.perf_counter()
            elif time.perf_counter() - idle_since > 60:
                raise RuntimeError(f"bare loop: no records for 60 s after {read:,}/{expected:,}")
        seconds = time.perf_counter() - started
        cpu = meter.since(cpu_before)
        copied = await conn.fetchval(f"SELECT count(*) FROM {table}")
        if copied != expected:
            raise RuntimeError(f"bare loop copied {copied:,} rows, expected {expected:,}")
        return Measured(read, seconds, cpu)
    finally:
        await consumer.stop()
        await conn.close()


def _check(records: Sequence[ConsumerRecord[bytes, bytes]], trust: TrustMap) -> None:
    for r in records:
        trust.signer_of(SignedRecord.from_headers(r.key, r.value or b"", r.headers))


async def _check_all(records: list[ConsumerRecord[bytes, bytes]], trust: TrustMap) -> None:
    """Every record's signature checked (`RecordRefused` if one fails), one thread per core."""
    size = -(-len(records) // CHECKING_THREADS)
    await asyncio.gather(
        *(
            asyncio.to_thread(_check, records[i : i + size], trust)
            for i in range(0, len(records), size)
        )
    )


async def _all_partitions(
    consumer: AIOKafkaConsumer, topics: Sequence[str]
) -> list[TopicPartition]:
    partitions: list[TopicPartition] = []
    for _ in range(50):
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if partitions and all(consumer.partitions_for_topic(t) for t in topics):
            return partitions
        await consumer.force_metadata_update()
    raise RuntimeError(f"no partitions found for {topics}")


async def rebuild_run(
    bootstrap: str,
    topics: Sequence[str],
    url: str,
    workload: WorkloadSummary,
    batch_size: int,
    *,
    idempotent: bool,
    profile: cProfile.Profile | None,
    meter: CpuMeter,
) -> Measured:
    """The subject: the real rebuild, into a fresh schema, without the swap."""
    pool = await open_pool(url)
    deadletter = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent
    )
    await deadletter.start()
    last_shown = [time.perf_counter()]

    def show(progress: Progress) -> None:
        now = time.perf_counter()
        if now - last_shown[0] >= 10:
            last_shown[0] = now
            print(f"  rebuild: {progress.applied:,} applied", file=sys.stderr, flush=True)

    try:
        if profile is not None:
            profile.enable()
        cpu_before = meter.read()
        # The event loop's own share (this thread), apart from the decoding threads.
        loop_before = time.thread_time()
        started = time.perf_counter()
        applied = await rebuild(
            pool,
            bootstrap,
            deadletter,
            trust=TrustMap.of(SIGNERS),
            topics=topics,
            rebuild_schema=REBUILD_SCHEMA,
            swap=False,
            on_progress=show,
            batch_size=batch_size,
        )
        seconds = time.perf_counter() - started
        cpu = meter.since(cpu_before)
        loop_us = (time.thread_time() - loop_before) / max(applied, 1) * 1e6
        other_us = cpu["this process"] / max(applied, 1) * 1e6 - loop_us
        print(
            f"  rebuild's process, CPU µs per event: event loop thread {loop_us:,.1f},"
            f" other threads (decoding) {other_us:,.1f}",
            flush=True,
        )
        if profile is not None:
            profile.disable()
        await _check_projection(pool, workload, applied)
        return Measured(applied, seconds, cpu)
    finally:
        await deadletter.stop()
        await pool.close()


async def _check_projection(pool: asyncpg.Pool, workload: WorkloadSummary, applied: int) -> None:
    """The rebuilt projection holds every aggregate at its last version."""
    async with pool.acquire() as conn:
        orgs, policy_versions = await conn.fetchrow(
            f"SELECT count(*), coalesce(sum(version), 0) FROM {REBUILD_SCHEMA}.org_policies"
        )
        contacts, contact_versions = await conn.fetchrow(
            f"SELECT count(*), coalesce(sum(version), 0) FROM {REBUILD_SCHEMA}.contacts"
        )
    expected = (workload.orgs, workload.policy_events, workload.contacts, workload.contact_events)
    found = (orgs, policy_versions, contacts, contact_versions)
    if applied != workload.events or found != expected:
        raise RuntimeError(
            f"rebuild incomplete: applied {applied:,} of {workload.events:,}; "
            f"(orgs, sum of policy versions, contacts, sum of contact versions) = {found}, "
            f"expected {expected}"
        )


@dataclass(frozen=True)
class WorkloadSummary:
    events: int
    orgs: int
    contacts: int
    policy_events: int
    contact_events: int


# --- the run ----------------------------------------------------------------------------


def _cpu_total(m: Measured) -> float:
    return sum(m.cpu_us_per_event().values())


def ratios(subject: Measured, baseline: Measured) -> dict[str, float | None]:
    """The rebuild against one baseline: by rate (what §9 states), and by CPU per event
    (baseline's CPU / the rebuild's: the rate ratio two idle cores would give, and the
    one a shared machine moves least)."""
    return {
        "rate": subject.rate / baseline.rate if baseline.rate else None,
        "cpu": _cpu_total(baseline) / _cpu_total(subject) if _cpu_total(subject) else None,
    }


def report(
    events: int, bare: Measured, subject: Measured, checking: Measured | None = None
) -> bool:
    of_bare = ratios(subject, bare)
    ratio = of_bare["rate"] or 0.0
    rate_met = subject.rate >= TARGET_EVENTS_PER_S
    ratio_met = ratio >= TARGET_RATIO
    rows = [
        (BARE, bare),
        *([(CHECKING, checking)] if checking else []),
        ("projection rebuild (services.auth.entrypoints.rebuild)", subject),
    ]
    print()
    print(f"{'':56} {'events':>11} {'seconds':>9} {'events/s':>10}")
    for name, m in rows:
        print(f"{name:56} {m.events:>11,} {m.seconds:>9.2f} {m.rate:>10,.0f}")
    print()
    print(f"{'rebuild against':56} {'by rate':>10} {'by CPU/event':>13}")
    compared = [("the bare loop (§9; the verdict)", of_bare)]
    if checking is not None:
        compared.append(("the bare loop checking each signature", ratios(subject, checking)))
    for name, r in compared:
        by_rate, by_cpu = r["rate"], r["cpu"]
        print(
            f"{name:56} {by_rate if by_rate is not None else float('nan'):>10.1%}"
            f" {by_cpu if by_cpu is not None else float('nan'):>13.1%}"
        )
    print()
    print("CPU µs per event (the figure a busy machine inflates least):")
    for name, m in rows:
        per_event = m.cpu_us_per_event()
        parts = ", ".join(f"{g} {v:,.1f}" for g, v in per_event.items())
        print(f"  {name}: {parts}; total {sum(per_event.values()):,.1f}")
    print()
    verdict: Callable[[bool], str] = lambda met: "met" if met else "MISSED"  # noqa: E731
    print(
        f"target ≥ {TARGET_EVENTS_PER_S:,} events/s: {verdict(rate_met)} "
        f"({subject.rate:,.0f} events/s)"
    )
    print(f"target ≥ {TARGET_RATIO:.0%} of the bare loop: {verdict(ratio_met)} ({ratio:.1%})")
    if events != 1_000_000:
        print(f"(note: §9's target is over 1,000,000 events; this run used {events:,})")
    return rate_met and ratio_met


def row_detail(
    events: int, bare: Measured, subject: Measured, checking: Measured | None
) -> dict[str, object]:
    """The row's `detail`: both baselines and the rebuild's ratio to each, labelled."""
    detail: dict[str, object] = {
        "events": events,
        "seconds": subject.seconds,
        "cpu_us_per_event": subject.cpu_us_per_event(),
        "bare_seconds": bare.seconds,
        "bare_cpu_us_per_event": bare.cpu_us_per_event(),
        "ratio_vs_bare": ratios(subject, bare)["rate"],
        "cpu_ratio_vs_bare": ratios(subject, bare)["cpu"],
    }
    if checking is not None:
        of_checking = ratios(subject, checking)
        detail |= {
            "checking_loop": f"{CHECKING}, {CHECKING_THREADS} threads",
            "checking_loop_events_per_s": checking.rate,
            "checking_loop_seconds": checking.seconds,
            "checking_loop_cpu_us_per_event": checking.cpu_us_per_event(),
            "ratio_vs_checking_loop": of_checking["rate"],
            "cpu_ratio_vs_checking_loop": of_checking["cpu"],
        }
    return detail


async def main(args: argparse.Namespace) -> int:
    row = await measure(args)
    return 1 if args.check and not row.met else 0


async def measure(args: argparse.Namespace) -> Row:
    """One rebuild beside the bare loop (`args` as `_parse_args` makes them)."""
    external_kafka = os.environ.get("PORTAL_MFA_KAFKA_BOOTSTRAP")
    external_pg = os.environ.get("PORTAL_MFA_DATABASE_URL")
    suffix = uuid.uuid4().hex[:8]
    topics = (f"bench.preferences.events.{suffix}", f"bench.contacts.events.{suffix}")
    databases = (f"bench_bare_{suffix}", f"bench_rebuild_{suffix}")
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    bootstrap = external_kafka or ""
    server_url = external_pg or ""
    profile = cProfile.Profile() if args.profile else None
    try:
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"revision {machine.revision()}; {machine.load()}"
        )
        if not external_kafka:
            broker = await EmbeddedBroker.start(free_port())
            bootstrap = broker.bootstrap
        if not external_pg:
            postgres = await EmbeddedPostgres.start()
            server_url = postgres.url("postgres")
        print(
            f"broker: {'external ' + bootstrap if external_kafka else 'embedded Tansu'}; "
            f"PostgreSQL: {'external' if external_pg else 'embedded'}"
        )
        bare_url = await ensure_database(server_url, databases[0])
        rebuild_url = await ensure_database(server_url, databases[1])
        await ensure_topics(bootstrap, dict.fromkeys(topics, args.partitions))
        if not external_kafka:
            await ensure_topics(bootstrap, [DEADLETTER])

        started = time.perf_counter()
        workload = generate(args.events, topics[0], topics[1], args.seed)
        generated = time.perf_counter() - started
        summary = WorkloadSummary(
            len(workload.messages),
            workload.orgs,
            workload.contacts,
            workload.policy_events,
            workload.contact_events,
        )
        volume = sum(len(m[2]) for m in workload.messages)
        print(
            f"workload: {summary.events:,} events ({summary.policy_events:,} policy events for "
            f"{summary.orgs:,} orgs, {summary.contact_events:,} contact events for "
            f"{summary.contacts:,} contacts), {volume / summary.events:.0f} B/event average; "
            f"topics of {args.partitions} partitions; batch size {args.batch_size:,}"
        )
        started = time.perf_counter()
        await produce(bootstrap, workload.messages, idempotent=bool(external_kafka))
        produced = time.perf_counter() - started
        print(f"setup (not measured): generated in {generated:.1f} s, produced in {produced:.1f} s")
        del workload
        gc.collect()

        meter = CpuMeter(
            postgres.pid if postgres is not None else None,
            broker.pid if broker is not None else None,
        )
        print(f"bare loop ... ({machine.load()})", flush=True)
        bare = await bare_loop(bootstrap, topics, bare_url, summary.events, args.batch_size, meter)
        print(f"  {bare.rate:,.0f} events/s", flush=True)
        checking: Measured | None = None
        if args.checking_baseline:
            print(f"bare loop checking signatures ... ({machine.load()})", flush=True)
            checking = await bare_loop(
                bootstrap,
                topics,
                bare_url,
                summary.events,
                args.batch_size,
                meter,
                table="checked_events",
                checking=TrustMap.of(SIGNERS),
            )
            print(f"  {checking.rate:,.0f} events/s", flush=True)
        gc.collect()
        print(f"rebuild ... ({machine.load()})", flush=True)
        subject = await rebuild_run(
            bootstrap,
            topics,
            rebuild_url,
            summary,
            args.batch_size,
            idempotent=bool(external_kafka),
            profile=profile,
            meter=meter,
        )
        print(f"  {subject.rate:,.0f} events/s ({machine.load()})", flush=True)
        met = report(summary.events, bare, subject, checking)
        baseline_name = BARE
        of_checking = ratios(subject, checking)["rate"] if checking is not None else None
        if of_checking is not None and checking is not None:
            # §9's ratio stays the row's; the one against the loop that also checks every
            # signature (the design's mandatory work) is named beside it.
            baseline_name += (
                f"; {CHECKING}: {checking.rate:,.0f} /s, rebuild {of_checking:.1%} of it"
            )
        row = Row(
            f"projection rebuild, {summary.events:,} events",
            subject.rate,
            "events/s",
            f"≥ {TARGET_EVENTS_PER_S:,} events/s and ≥ {TARGET_RATIO:.0%} of bare",
            met,  # judged on this run; §9 counts it over 1,000,000 events
            bare.rate,
            baseline_name,
            ratio(subject.rate, bare.rate),
            row_detail(summary.events, bare, subject, checking),
        )
        if profile is not None:
            profile.dump_stats(args.profile)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            print(f"\nprofile of the rebuild (cProfile, saved to {args.profile}):")
            print(out.getvalue())
        return row
    finally:
        if broker is not None:
            broker.stop()
        elif external_kafka:
            with contextlib.suppress(Exception):
                await _delete_topics(bootstrap, topics)
        if postgres is not None:
            postgres.stop()
        elif external_pg:
            for name in databases:
                with contextlib.suppress(Exception):
                    await drop_database(server_url, name)


async def _delete_topics(bootstrap: str, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
    finally:
        await admin.close()


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.projection_rebuild", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--partitions", type=int, default=3, help="per topic; default 3")
    parser.add_argument(
        "--batch-size", type=int, default=5000, help="records per batch, both loops; default 5000"
    )
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the rebuild; stats to FILE, top 30 printed"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if a target is missed"
    )
    parser.add_argument(
        "--checking-baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the bare loop checking each record's signature, and report the"
        " ratio to it beside §9's (default: on)",
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parse_args())))

"""ProjectionConsumer + LoginProjection against the real broker and the real PostgreSQL.

What DESIGN.md §4 promises of a projection: batches are applied in one transaction with
the offsets they consumed, so a crash at any point loses nothing and applies nothing
twice; a redelivered event is a no-op; a poison message is dead-lettered and the stream
goes on; readiness means caught up with what was there at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.auth.domain.projected import OrgPolicy, ProjectedContact
from services.auth.projection import LoginProjection
from shared.db import open_pool
from shared.events import (
    CONTACTS_EVENTS,
    DEADLETTER,
    PREFERENCES_EVENTS,
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    Empty,
    Event,
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
from shared.kafka import new_producer
from shared.projection import ProjectionConsumer
from shared.settings import Settings

pytestmark = pytest.mark.integration

FreshDatabase = Callable[..., Awaitable[str]]
FreshTopics = Callable[..., Awaitable[dict[str, str]]]
MakeSettings = Callable[..., Settings]
Position = tuple[str, int]  # (topic, partition)

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("projection_process.py")
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CAUSE = Cause(actor="system", at=T0)
POLICY_COLUMNS = ", ".join(f.name for f in fields(OrgPolicy))
CONTACT_COLUMNS = ", ".join(f.name for f in fields(ProjectedContact))


# --- producing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """An event as the broker stored it."""

    event: Event
    topic: str
    partition: int
    offset: int


async def produce(
    producer: AIOKafkaProducer, topics: dict[str, str], events: Sequence[Event]
) -> list[Placed]:
    """Publish events as DESIGN.md §3 says: key = aggregate_id, JSON value, type headers."""
    pending = [
        await producer.send(
            topics[event.topic],
            value=event.to_json(),
            key=event.kafka_key(),
            headers=event.kafka_headers(),
        )
        for event in events
    ]
    stored = await asyncio.gather(*pending)
    return [
        Placed(event, meta.topic, meta.partition, meta.offset)
        for event, meta in zip(events, stored, strict=True)
    ]


def ends_of(placed: Iterable[Placed]) -> dict[Position, int]:
    """Next offset per partition after everything placed (what the stored offsets must reach)."""
    ends: dict[Position, int] = {}
    for p in placed:
        ends[(p.topic, p.partition)] = max(ends.get((p.topic, p.partition), 0), p.offset + 1)
    return ends


@contextlib.asynccontextmanager
async def started_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = new_producer(settings, linger_ms=5)  # acks=all, idempotence per the broker
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


# --- event histories and the expected fold ----------------------------------------------


def history(rng: Random, *, orgs: int, contacts: int, total: int) -> list[Event]:
    """`total` valid events, interleaved across aggregates, gap-free versions per aggregate."""
    org_ids = [f"org-{i:04d}" for i in range(orgs)]
    contact_orgs = {f"contact-{i:05d}": org_ids[i % orgs] for i in range(contacts)}
    versions: dict[str, int] = {}
    epochs: dict[str, int] = {}
    deleted: set[str] = set()
    events: list[Event] = []
    while len(events) < total:
        if rng.random() < 0.3:
            org_id = rng.choice(org_ids)
            version = versions[org_id] = versions.get(org_id, 0) + 1
            common: dict[str, Any] = {
                "org_id": org_id,
                "aggregate_id": org_id,
                "aggregate_version": version,
                "cause": CAUSE,
            }
            roll = rng.random()
            if roll < 0.4:
                events.append(MfaPolicyEnabled.new(payload=Empty(), **common))
            elif roll < 0.8:
                events.append(MfaPolicyDisabled.new(payload=Empty(), **common))
            else:
                name = PortalNameSetPayload(portal_name=f"Portal {org_id} #{version}")
                events.append(PortalNameSet.new(payload=name, **common))
            continue
        contact_id = rng.choice(list(contact_orgs))
        if contact_id in deleted:
            continue
        version = versions[contact_id] = versions.get(contact_id, 0) + 1
        common = {
            "org_id": contact_orgs[contact_id],
            "aggregate_id": contact_id,
            "aggregate_version": version,
            "cause": CAUSE,
        }
        email = f"{contact_id.title()}.v{version}@Example.COM"
        roll = rng.random()
        if version == 1:
            created = ContactCreatedPayload(
                kind=rng.choice(["customer", "vendor"]),
                display_name=f"Contact {contact_id}",
                email=email,
            )
            events.append(ContactCreated.new(payload=created, **common))
        elif roll < 0.35:
            granted = PortalAccessGrantedPayload(
                email=email,
                invitation_hash=f"{rng.getrandbits(128):032x}",
                expires_at=T0 + timedelta(days=7, microseconds=rng.randrange(10**9)),
            )
            events.append(PortalAccessGranted.new(payload=granted, **common))
        elif roll < 0.6:
            events.append(PortalAccessRevoked.new(payload=Empty(), **common))
        elif roll < 0.97:
            epoch = epochs[contact_id] = epochs.get(contact_id, 0) + 1
            reset = MfaResetPayload(mfa_epoch=epoch, reason="lost device")
            events.append(MfaReset.new(payload=reset, **common))
        else:
            deleted.add(contact_id)
            events.append(ContactDeleted.new(payload=Empty(), **common))
    return events


@dataclass(frozen=True)
class Folded:
    policies: list[OrgPolicy]
    contacts: list[ProjectedContact]


def fold(events: Iterable[Event]) -> Folded:
    """The expected read model: the pure evolve functions over the events as read off the wire."""
    policies: dict[str, OrgPolicy] = {}
    contacts: dict[str, ProjectedContact] = {}
    for sent in events:
        event = parse_event(sent.to_json())
        key = event.aggregate_id
        match event:
            case MfaPolicyEnabled() | MfaPolicyDisabled() | PortalNameSet():
                policies[key] = policies.get(key, OrgPolicy(key)).evolve(event)
            case (
                ContactCreated()
                | PortalAccessGranted()
                | PortalAccessRevoked()
                | MfaReset()
                | ContactDeleted()
            ):
                before = contacts.get(key, ProjectedContact(key, event.org_id))
                contacts[key] = before.evolve(event)
            case _:
                raise AssertionError(f"not a login-projection event: {event.event_type}")
    return Folded(
        policies=[policies[k] for k in sorted(policies)],
        contacts=[contacts[k] for k in sorted(contacts)],
    )


def applied_prefix(placed: Sequence[Placed], offsets: dict[Position, int]) -> list[Event]:
    """The events below the stored offsets, in log order per partition."""
    below = [p for p in placed if p.offset < offsets.get((p.topic, p.partition), 0)]
    return [p.event for p in sorted(below, key=lambda p: (p.topic, p.partition, p.offset))]


# --- reading the database ---------------------------------------------------------------


async def projected(conn: asyncpg.Connection, schema: str) -> Folded:
    policies = await conn.fetch(
        f'SELECT {POLICY_COLUMNS} FROM {schema}.org_policies ORDER BY org_id COLLATE "C"'
    )
    contacts = await conn.fetch(
        f'SELECT {CONTACT_COLUMNS} FROM {schema}.contacts ORDER BY contact_id COLLATE "C"'
    )
    return Folded(
        policies=[OrgPolicy(**dict(r)) for r in policies],
        contacts=[ProjectedContact(**dict(r)) for r in contacts],
    )


async def raw_rows(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "org_policies": [
            tuple(r)
            for r in await conn.fetch(
                f'SELECT * FROM {schema}.org_policies ORDER BY org_id COLLATE "C"'
            )
        ],
        "contacts": [
            tuple(r)
            for r in await conn.fetch(
                f'SELECT * FROM {schema}.contacts ORDER BY contact_id COLLATE "C"'
            )
        ],
    }


async def stored(conn: asyncpg.Connection, schema: str) -> dict[Position, int]:
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {schema}.projection_offsets"
        " WHERE projection = 'login_requirement'"
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


# --- running consumers ------------------------------------------------------------------


async def until(
    condition: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    watch: Sequence[asyncio.Task[None]] = (),
    interval: float = 0.05,
) -> None:
    """Poll `condition` until true; fail fast if a watched consumer task ended."""
    deadline = time.monotonic() + within
    while True:
        for task in watch:
            if task.done():
                raise AssertionError(f"consumer stopped while waiting for {what}") from (
                    None if task.cancelled() else task.exception()
                )
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(consumer: ProjectionConsumer) -> AsyncIterator[asyncio.Task[None]]:
    """Start the consumer and its run loop; always cancel and stop it afterwards."""
    task: asyncio.Task[None] | None = None
    try:
        await consumer.start()
        task = asyncio.create_task(consumer.run())
        yield task
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await consumer.stop()


def new_consumer(
    *,
    bootstrap: str,
    topics: dict[str, str],
    pool: asyncpg.Pool,
    projection: LoginProjection,
    deadletter: AIOKafkaProducer,
    batch_size: int,
    group_id: str | None = None,
) -> ProjectionConsumer:
    return ProjectionConsumer(
        bootstrap=bootstrap,
        topics=[topics[PREFERENCES_EVENTS], topics[CONTACTS_EVENTS]],
        pool=pool,
        projection=projection,
        deadletter=deadletter,
        group_id=group_id,
        batch_size=batch_size,
        deadletter_topic=topics[DEADLETTER],
    )


@dataclass
class Setup:
    topics: dict[str, str]
    url: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer


@pytest.fixture
async def setup(
    fresh_topics: FreshTopics, fresh_database: FreshDatabase, make_settings: MakeSettings
) -> AsyncIterator[Setup]:
    """Fresh topics (3 partitions each), a fresh database with a pool, a started producer."""
    topics = await fresh_topics(PREFERENCES_EVENTS, CONTACTS_EVENTS, DEADLETTER, partitions=3)
    url = await fresh_database("projection")
    pool = await open_pool(url, min_size=1, max_size=4)
    try:
        async with started_producer(make_settings()) as producer:
            yield Setup(topics, url, pool, producer)
    finally:
        await pool.close()


async def create(pool: asyncpg.Pool, *projections: LoginProjection) -> None:
    async with pool.acquire() as conn:
        for projection in projections:
            await projection.create(conn)


# --- 1. crash consistency ---------------------------------------------------------------

KILLED_APP = "killed_projection"


async def spawn_runner(
    setup: Setup, bootstrap: str, schema: str, idempotence: bool, log: Path
) -> asyncio.subprocess.Process:
    separator = "&" if "?" in setup.url else "?"
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RUNNER),
            "--bootstrap",
            bootstrap,
            "--database-url",
            f"{setup.url}{separator}application_name={KILLED_APP}",
            "--schema",
            schema,
            "--topic",
            setup.topics[PREFERENCES_EVENTS],
            "--topic",
            setup.topics[CONTACTS_EVENTS],
            "--deadletter-topic",
            setup.topics[DEADLETTER],
            "--batch-size",
            "50",  # many small transactions: the kill lands inside one
            *(["--idempotence"] if idempotence else []),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        assert line == b"running\n", f"runner did not start; see {log}"
    except BaseException:
        await kill(process)
        raise
    return process


async def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()


async def kill_inside_a_transaction(
    conn: asyncpg.Connection, process: asyncio.subprocess.Process
) -> None:
    """SIGKILL the runner while its connection holds an open transaction that wrote rows.

    The process is frozen (SIGSTOP) and its backend inspected; if it is between batches
    it is thawed and we try again.
    """
    for _ in range(2000):
        process.send_signal(signal.SIGSTOP)
        writing = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND backend_xid IS NOT NULL AND state IN ('active', 'idle in transaction')",
            KILLED_APP,
        )
        if writing:
            process.send_signal(signal.SIGKILL)
            await process.wait()
            return
        process.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.002)
    raise AssertionError("never caught the runner inside a transaction")


async def test_killed_mid_batch_and_restarted_ends_identical_to_one_that_never_stopped(
    setup: Setup, kafka_bootstrap: str, kafka_idempotence: bool, tmp_path: Path
) -> None:
    events = history(Random(20250301), orgs=300, contacts=2500, total=20_000)
    placed = await produce(setup.producer, setup.topics, events)
    ends = ends_of(placed)
    assert sum(ends.values()) == len(events)
    assert len(ends) == 6, "both topics, every partition, carry events"

    killed, steady = LoginProjection(schema="killed"), LoginProjection(schema="steady")
    await create(setup.pool, killed, steady)
    log = tmp_path / "runner.log"
    processes: list[asyncio.subprocess.Process] = []
    steady_consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=steady,
        deadletter=setup.producer,
        batch_size=500,
    )
    try:
        async with setup.pool.acquire() as conn, running(steady_consumer) as steady_task:
            processes.append(
                await spawn_runner(setup, kafka_bootstrap, "killed", kafka_idempotence, log)
            )

            async def a_third_done() -> bool:
                assert processes[0].returncode is None, f"the runner died; see {log}"
                return sum((await stored(conn, "killed")).values()) >= len(events) // 3

            await until(a_third_done, within=30, what="the runner to get a third through")
            await kill_inside_a_transaction(conn, processes[0])

            async def backend_gone() -> bool:
                return not await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    KILLED_APP,
                )

            await until(backend_gone, within=10, what="PostgreSQL to drop the dead connection")

            # Really partial, and what is there is exactly the batches whose offsets committed.
            at_kill = await stored(conn, "killed")
            assert 0 < sum(at_kill.values()) < len(events)
            assert await projected(conn, "killed") == fold(applied_prefix(placed, at_kill))

            processes.append(
                await spawn_runner(setup, kafka_bootstrap, "killed", kafka_idempotence, log)
            )

            async def killed_done() -> bool:
                return await stored(conn, "killed") == ends

            async def steady_done() -> bool:
                return await stored(conn, "steady") == ends and steady_consumer.ready

            await until(killed_done, within=30, what="the restarted runner to reach the end")
            await until(steady_done, within=30, what="the steady consumer", watch=[steady_task])
            assert processes[1].returncode is None, "the restarted runner died"

            assert await raw_rows(conn, "killed") == await raw_rows(conn, "steady")
            expected = fold(events)
            assert await projected(conn, "killed") == expected
            assert await projected(conn, "steady") == expected
            assert steady_consumer.applied == len(events)
            assert steady_consumer.dead_lettered == 0
    finally:
        for process in processes:
            await kill(process)


# --- 2. duplicates ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 1000], ids=["one-per-transaction", "one-batch"])
async def test_a_duplicated_message_is_applied_once(
    setup: Setup, kafka_bootstrap: str, batch_size: int
) -> None:
    org: dict[str, Any] = {"org_id": "org-dup", "aggregate_id": "org-dup", "cause": CAUSE}
    enabled = MfaPolicyEnabled.new(aggregate_version=1, payload=Empty(), **org)
    disabled = MfaPolicyDisabled.new(aggregate_version=2, payload=Empty(), **org)
    contact: dict[str, Any] = {"org_id": "org-dup", "aggregate_id": "contact-dup", "cause": CAUSE}
    created = ContactCreated.new(
        aggregate_version=1,
        payload=ContactCreatedPayload(kind="customer", display_name="Ada", email="ada@x.test"),
        **contact,
    )
    reset = MfaReset.new(
        aggregate_version=2, payload=MfaResetPayload(mfa_epoch=1, reason="lost"), **contact
    )
    # The v1 events again, byte for byte: a redelivery after v2 was applied.
    placed = await produce(
        setup.producer, setup.topics, [enabled, disabled, enabled, created, reset, created]
    )
    ends = ends_of(placed)
    assert sum(ends.values()) == 6

    projection = LoginProjection(schema="dup")
    await create(setup.pool, projection)
    consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=projection,
        deadletter=setup.producer,
        batch_size=batch_size,
    )
    async with setup.pool.acquire() as conn, running(consumer) as task:

        async def done() -> bool:
            return await stored(conn, "dup") == ends

        await until(done, within=20, what="all six messages consumed", watch=[task])

        policy = await projection.policy(conn, "org-dup")
        assert (policy.mfa_enabled, policy.version) == (False, 2)
        assert policy.policy_event_id == disabled.event_id
        projected_contact = await projection.contact(conn, "org-dup", "contact-dup")
        assert projected_contact is not None
        assert projected_contact.version == 2
        assert projected_contact.mfa_epoch == 1
        assert projected_contact.reset_event_id == reset.event_id
        assert (projected_contact.kind, projected_contact.email) == ("customer", "ada@x.test")
        assert await projected(conn, "dup") == fold([enabled, disabled, created, reset])
        assert consumer.dead_lettered == 0


# --- 3. poison messages -----------------------------------------------------------------

SECRETS = ("hunter2-Secret", "JBSWY3DPEHPK3PXP", "7HQX-2KD9-PL3M", "492039")


async def read_topic(bootstrap: str, topic: str, count: int, within: float) -> list[Any]:
    """Every record of `topic` once `count` have arrived (and a moment longer, to see extras)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[Any] = []
        deadline = time.monotonic() + within
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records.extend(r for part in batch.values() for r in part)
        batch = await consumer.getmany(timeout_ms=500)
        records.extend(r for part in batch.values() for r in part)
        return records
    finally:
        await consumer.stop()


async def test_a_malformed_message_is_dead_lettered_and_the_next_good_one_applied(
    setup: Setup, kafka_bootstrap: str
) -> None:
    topic = setup.topics[CONTACTS_EVENTS]
    key = b"contact-poison"
    contact: dict[str, Any] = {"org_id": "org-p", "aggregate_id": "contact-poison", "cause": CAUSE}
    created = ContactCreated.new(
        aggregate_version=1,
        payload=ContactCreatedPayload(kind="vendor", display_name="Bo", email="BO@x.test"),
        **contact,
    )
    granted = PortalAccessGranted.new(
        aggregate_version=2,
        payload=PortalAccessGrantedPayload(
            email="bo@x.test", invitation_hash="ab" * 32, expires_at=T0 + timedelta(days=7)
        ),
        **contact,
    )
    reset = MfaReset.new(
        aggregate_version=3, payload=MfaResetPayload(mfa_epoch=1, reason="lost"), **contact
    )
    garbage = b"\x00\xffpassword=hunter2-Secret{not json"
    unknown = (
        b'{"event_type": "PasswordLeaked", "schema_version": 1, "aggregate_id": "contact-poison",'
        b' "payload": {"password": "hunter2-Secret", "totp_secret": "JBSWY3DPEHPK3PXP"}}'
    )
    broken = created.model_dump(mode="json") | {
        "event_id": "6f1f6a0e-7a0c-4bb8-9d5e-0d7f9f7b8e21",
        "event_type": "MfaReset",
        "aggregate_version": 4,
        "payload": {"reason": "code 492039", "backup_code": "7HQX-2KD9-PL3M"},  # no mfa_epoch
    }
    bad = [garbage, unknown, json.dumps(broken).encode()]
    good: list[Event] = [created, granted, reset]

    sent: list[tuple[bytes, int, int]] = []  # value, partition, offset
    for bad_value, good_event in zip(bad, good, strict=True):
        meta = await (await setup.producer.send(topic, value=bad_value, key=key))
        sent.append((bad_value, meta.partition, meta.offset))
        await produce(setup.producer, setup.topics, [good_event])
    policy = MfaPolicyEnabled.new(
        org_id="org-p", aggregate_id="org-p", aggregate_version=1, payload=Empty(), cause=CAUSE
    )
    await produce(setup.producer, setup.topics, [policy])

    projection = LoginProjection(schema="poison")
    await create(setup.pool, projection)
    consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=projection,
        deadletter=setup.producer,
        batch_size=2,
    )
    async with setup.pool.acquire() as conn, running(consumer) as task:

        async def caught_up() -> bool:
            return consumer.ready

        await until(caught_up, within=15, what="readiness past the poison", watch=[task])
        dead = await read_topic(kafka_bootstrap, setup.topics[DEADLETTER], 3, within=10)

        assert not task.done(), "the consumer keeps running"
        assert consumer.dead_lettered == 3
        assert consumer.applied == 4
        assert await projected(conn, "poison") == fold([created, granted, reset, policy])
        now = await projection.contact(conn, "org-p", "contact-poison")
        assert now is not None
        assert (now.version, now.portal_access, now.mfa_epoch) == (3, True, 1)

    assert [(r.value, r.key) for r in dead] == [(value, key) for value, _, _ in sent]
    for record, (_, partition, offset) in zip(dead, sent, strict=True):
        headers = {name: value.decode() for name, value in record.headers}
        assert headers["error"].strip()
        assert not any(secret in headers["error"] for secret in SECRETS), headers["error"]
        assert headers["original_topic"] == topic
        assert headers["original_partition"] == str(partition)
        assert headers["original_offset"] == str(offset)
    assert "mfa_epoch" in dict(dead[2].headers)["error"].decode()


# --- 4. readiness -----------------------------------------------------------------------


async def test_ready_only_once_caught_up_with_what_was_there_at_start(
    setup: Setup, kafka_bootstrap: str
) -> None:
    events = history(Random(4), orgs=40, contacts=300, total=3000)
    placed = await produce(setup.producer, setup.topics, events)
    ends = ends_of(placed)

    projection = LoginProjection(schema="readiness")
    await create(setup.pool, projection)
    consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=projection,
        deadletter=setup.producer,
        batch_size=50,
    )
    try:
        async with setup.pool.acquire() as conn:
            await consumer.start()
            assert not consumer.ready
            assert sum((await consumer.lag()).values()) > 0

            task = asyncio.create_task(consumer.run())
            try:
                seen_partial_not_ready = False

                async def ready_only_when_done() -> bool:
                    nonlocal seen_partial_not_ready
                    ready = consumer.ready
                    offsets = await stored(conn, "readiness")  # read after `ready`
                    if ready:
                        assert offsets == ends, "ready before the stored offsets reached the end"
                        return True
                    if 0 < sum(offsets.values()) < len(events):
                        seen_partial_not_ready = True
                    return False

                await until(
                    ready_only_when_done, within=20, what="readiness", watch=[task], interval=0
                )
                assert seen_partial_not_ready, "never observed the consumer part way"
                assert set((await consumer.lag()).values()) == {0}
                assert len(await consumer.lag()) == 6
                assert await projected(conn, "readiness") == fold(events)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    finally:
        await consumer.stop()


# --- 5. offsets live with the rows ------------------------------------------------------


async def test_a_restarted_consumer_resumes_from_its_stored_offsets_and_reapplies_nothing(
    setup: Setup, kafka_bootstrap: str
) -> None:
    everything = history(Random(5), orgs=20, contacts=100, total=700)
    events, later = everything[:600], everything[600:]
    placed = await produce(setup.producer, setup.topics, events)
    ends = ends_of(placed)
    projection = LoginProjection(schema="restart")
    await create(setup.pool, projection)

    def consumer() -> ProjectionConsumer:
        return new_consumer(
            bootstrap=kafka_bootstrap,
            topics=setup.topics,
            pool=setup.pool,
            projection=projection,
            deadletter=setup.producer,
            batch_size=100,
        )

    first, second = consumer(), consumer()
    async with setup.pool.acquire() as conn:
        async with running(first) as task:
            await until(is_ready(first), within=20, what="first ready", watch=[task])
            assert first.applied == len(events)
        offsets_before = await stored(conn, "restart")
        rows_before = await raw_rows(conn, "restart")
        assert offsets_before == ends
        assert await projected(conn, "restart") == fold(events)

        async with running(second) as task:
            await until(is_ready(second), within=20, what="second ready", watch=[task])
            assert second.applied == 0, "the restart re-read events its rows already hold"
            assert await stored(conn, "restart") == offsets_before
            assert await raw_rows(conn, "restart") == rows_before

            # ... and goes on from there, reading only what is new.
            placed_later = await produce(setup.producer, setup.topics, later)
            ends_later = ends_of([*placed, *placed_later])

            async def resumed() -> bool:
                return await stored(conn, "restart") == ends_later

            await until(resumed, within=20, what="the later events", watch=[task])
            assert second.applied == len(later)
            assert await projected(conn, "restart") == fold(everything)


def is_ready(consumer: ProjectionConsumer) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        return consumer.ready

    return ready


async def lock_waiters(conn: asyncpg.Connection, table: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted", table
    )
    return count


async def test_a_group_member_seeks_to_its_stored_offsets_before_applying_anything(
    setup: Setup, kafka_bootstrap: str
) -> None:
    """In a consumer group the seek happens in the rebalance listener, which reads
    PostgreSQL. Here that read is slow (the offsets table is locked for a moment, as under
    load): nothing may be fetched from Kafka's default position meanwhile, or a restart
    re-applies old events and writes their (lower) offsets over the stored ones."""
    events = history(Random(6), orgs=20, contacts=100, total=600)
    ends = ends_of(await produce(setup.producer, setup.topics, events))
    projection = LoginProjection(schema="rejoin")
    await create(setup.pool, projection)
    common: dict[str, Any] = {
        "bootstrap": kafka_bootstrap,
        "topics": setup.topics,
        "pool": setup.pool,
        "projection": projection,
        "deadletter": setup.producer,
        "batch_size": 100,
    }
    first = new_consumer(**common)
    async with running(first) as task:
        await until(is_ready(first), within=20, what="first ready", watch=[task])
    group = f"rejoin-{setup.topics[DEADLETTER].rsplit('.', 1)[-1]}"
    member = new_consumer(**common, group_id=group)  # nothing ever committed to Kafka

    async with setup.pool.acquire() as conn, setup.pool.acquire() as locker:
        offsets_before = await stored(conn, "rejoin")
        rows_before = await raw_rows(conn, "rejoin")
        assert offsets_before == ends
        table = projection.offsets_table
        locked = locker.transaction()
        await locked.start()
        try:
            await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            async with running(member) as task:

                async def listener_waits() -> bool:
                    return await lock_waiters(conn, table) >= 1

                async def a_batch_also_waits() -> bool:
                    return await lock_waiters(conn, table) >= 2

                await until(listener_waits, within=20, what="the group assignment", watch=[task])
                with contextlib.suppress(AssertionError):  # the right outcome: nothing fetched
                    await until(a_batch_also_waits, within=2, what="a premature batch")
                await locked.rollback()

                await until(is_ready(member), within=20, what="member ready", watch=[task])
                assert member.applied == 0, "applied events from before the stored offsets"
                assert await stored(conn, "rejoin") == offsets_before
                assert await raw_rows(conn, "rejoin") == rows_before
        finally:
            if locker.is_in_transaction():
                await locked.rollback()

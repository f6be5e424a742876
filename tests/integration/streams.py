"""Event streams for the integration tests: histories, producing, folding, consumers."""

from __future__ import annotations

import asyncio
import contextlib
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
from aiokafka import AIOKafkaProducer

from services.auth.projection import LoginProjection
from shared.contracts import (
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
from shared.login_rule.projected import OrgPolicy, ProjectedContact
from shared.projection import ProjectionConsumer
from shared.settings import Settings
from tests.signing_keys import TEST_TRUST, signed_headers

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
    """Publish events as the owning services do: key = aggregate_id, JSON value, type headers,
    signed with the owner's test key (DESIGN.md §3, §11)."""
    pending = [
        await producer.send(
            topics[event.topic],
            value=event.to_json(),
            key=event.kafka_key(),
            headers=signed_headers(event),
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
        # Events held beyond a version gap are part of the projection's state (DESIGN.md §11).
        "pending_events": [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT * FROM {schema}.pending_events"
                ' ORDER BY aggregate_id COLLATE "C", aggregate_type, version'
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
    shared_lock: int | None = None,
) -> ProjectionConsumer:
    return ProjectionConsumer(
        bootstrap=bootstrap,
        topics=[topics[PREFERENCES_EVENTS], topics[CONTACTS_EVENTS]],
        pool=pool,
        projection=projection,
        deadletter=deadletter,
        trust=TEST_TRUST,
        group_id=group_id,
        batch_size=batch_size,
        deadletter_topic=topics[DEADLETTER],
        shared_lock=shared_lock,
    )


@dataclass
class Setup:
    topics: dict[str, str]
    url: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer


async def create(pool: asyncpg.Pool, *projections: LoginProjection) -> None:
    async with pool.acquire() as conn:
        for projection in projections:
            await projection.create(conn)


# --- a consumer in a subprocess, to be killed ---------------------------------------

KILLED_APP = "killed_projection"


async def spawn_runner(
    setup: Setup,
    bootstrap: str,
    schema: str,
    idempotence: bool,
    log: Path,
    extra_args: Sequence[str] = (),
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
            *extra_args,
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

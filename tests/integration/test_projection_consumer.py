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
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from random import Random
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.auth.projection import LoginProjection
from shared.contracts import (
    CONTACTS_EVENTS,
    DEADLETTER,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    Event,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
)
from shared.projection import ProjectionConsumer
from tests.integration.streams import (
    CAUSE,
    KILLED_APP,
    T0,
    Setup,
    applied_prefix,
    create,
    ends_of,
    fold,
    history,
    kill,
    new_consumer,
    produce,
    projected,
    raw_rows,
    running,
    spawn_runner,
    stored,
    until,
)
from tests.signing_keys import TEST_SIGNERS

pytestmark = pytest.mark.integration


# --- 1. crash consistency ---------------------------------------------------------------


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
        # Signed by the owning service's key: poison from a trusted publisher, not a forgery.
        signature = TEST_SIGNERS["contacts"].headers(key, bad_value)
        meta = await (await setup.producer.send(topic, value=bad_value, key=key, headers=signature))
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
        dead = await read_topic(kafka_bootstrap, setup.topics[DEADLETTER], 3, within=5)

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
                # The counter moves just after the batch's transaction commits: wait for both.
                return await stored(conn, "restart") == ends_later and second.applied >= len(later)

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


async def test_the_consumer_recovers_when_its_database_connections_are_cut(
    setup: Setup, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = history(Random(13), orgs=30, contacts=300, total=6000)
    placed = await produce(setup.producer, setup.topics, events)
    ends = ends_of(placed)
    projection = LoginProjection(schema="recovering")
    await create(setup.pool, projection)
    consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=projection,
        deadletter=setup.producer,
        batch_size=50,
    )
    admin = await asyncpg.connect(setup.url)

    async def all_stored() -> bool:
        return await stored(admin, "recovering") == ends

    cuts = 0
    try:
        await consumer.start()
        task = asyncio.create_task(consumer.run_until_cancelled(first_retry_s=0.05))
        try:
            # PostgreSQL goes away under the consumer, mid-stream, again and again.
            while cuts < 5 and not await all_stored():
                cuts += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state IN ('active', 'idle in transaction')"
                )
                await asyncio.sleep(0.05)
            assert cuts > 0, "a batch should have been cut mid-transaction"
            await until(all_stored, within=60, what="recovery", watch=[task])
            await until(is_ready(consumer), within=30, what="ready again", watch=[task])
            assert await projected(admin, "recovering") == fold(events)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()
    finally:
        await admin.close()
    # Retried in place (or, for a failure outside a batch, restarted): either way it said so.
    assert any(
        "retrying" in r.getMessage() or "stopped" in r.getMessage() for r in caplog.records
    ), "it failed and recovered"

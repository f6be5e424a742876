"""Playing the attacker who can write to the event topics (DESIGN.md §11, "Services").

Raw records go straight onto the real broker's event topics: unsigned, signed by a key
nobody trusts, signed by a trusted key of the wrong service, and genuinely signed but
altered afterwards. None may change the login decision; each lands on the dead-letter
topic with its reason and is counted; a later genuine event still applies.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from services.auth.adapters import enrollments
from services.auth.decisions import login_requirement
from services.auth.projection import LoginProjection
from shared.contracts import (
    CONTACTS_EVENTS,
    DEADLETTER,
    PREFERENCES_EVENTS,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
)
from shared.db import EVENTSTORE_SQL, read_sql
from shared.signing import RecordSigner
from tests.integration.streams import (
    CAUSE,
    T0,
    Setup,
    new_consumer,
    produce,
    raw_rows,
    running,
    until,
)
from tests.signing_keys import TEST_SIGNERS

pytestmark = pytest.mark.integration

ORG, ENROLLED, NEW = "org-forge", "contact-enrolled", "contact-new"
SCHEMA = "forgery"


def policy(cls: type[EventEnvelope], version: int) -> EventEnvelope:
    return cls.new(
        org_id=ORG, aggregate_id=ORG, aggregate_version=version, payload=Empty(), cause=CAUSE
    )


def created(contact_id: str) -> ContactCreated:
    payload = ContactCreatedPayload(kind="vendor", display_name="V", email=f"{contact_id}@x.test")
    return ContactCreated.new(
        org_id=ORG, aggregate_id=contact_id, aggregate_version=1, payload=payload, cause=CAUSE
    )


def reset(version: int) -> MfaReset:
    return MfaReset.new(
        org_id=ORG,
        aggregate_id=ENROLLED,
        aggregate_version=version,
        payload=MfaResetPayload(mfa_epoch=1, reason="forged"),
        cause=CAUSE,
    )


Attack = tuple[
    str, str, bytes, bytes, list[tuple[str, bytes]]
]  # reason, topic, key, value, headers


def attacks(topics: dict[str, str]) -> list[Attack]:
    """Each forgery the next version in line, so it would apply if it were believed."""
    stranger = RecordSigner.generate("attacker-1")
    impostor = RecordSigner.generate(TEST_SIGNERS["preferences"].kid)  # a trusted kid, not its key
    prefs, contacts = topics[PREFERENCES_EVENTS], topics[CONTACTS_EVENTS]
    found: list[Attack] = []

    def add(reason: str, event: EventEnvelope, signer: RecordSigner | None) -> None:
        key, value = event.kafka_key(), event.to_json()
        headers = event.kafka_headers() + (signer.headers(key, value) if signer else [])
        found.append(
            (reason, prefs if event.topic == PREFERENCES_EVENTS else contacts, key, value, headers)
        )

    # (a) unsigned
    add("unsigned", policy(MfaPolicyDisabled, 2), None)
    add("unsigned", reset(2), None)
    # (b) signed by a key nobody trusts, or by one posing under a trusted key id
    add("unknown signer", policy(MfaPolicyDisabled, 2), stranger)
    add("bad signature", policy(MfaPolicyDisabled, 2), impostor)
    # (c) a trusted key of the wrong service
    add(
        "wrong signer for aggregate type org_preferences",
        policy(MfaPolicyDisabled, 2),
        TEST_SIGNERS["contacts"],
    )
    add("wrong signer for aggregate type contact", reset(2), TEST_SIGNERS["preferences"])
    # (d) genuinely signed, then altered: harmless Enabled turned into Disabled, epoch bumped
    genuine = policy(MfaPolicyEnabled, 2)
    key, value = genuine.kafka_key(), genuine.to_json()
    altered = value.replace(b"MfaPolicyEnabled", b"MfaPolicyDisabled")
    headers = genuine.kafka_headers() + TEST_SIGNERS["preferences"].headers(key, value)
    found.append(("bad signature", prefs, key, altered, headers))
    genuine_reset = reset(2)
    key, value = genuine_reset.kafka_key(), genuine_reset.to_json()
    headers = genuine_reset.kafka_headers() + TEST_SIGNERS["contacts"].headers(key, value)
    found.append(
        ("bad signature", contacts, key, value.replace(b'"mfa_epoch":1', b'"mfa_epoch":9'), headers)
    )
    return found


async def decisions(conn: asyncpg.Connection, projection: LoginProjection) -> dict[str, str]:
    return {
        contact: (await login_requirement(conn, projection, ORG, contact)).requirement
        for contact in (ENROLLED, NEW)
    }


async def dead_letters(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[Any] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for part in batch.values() for r in part]
            if len(records) >= count:
                break
        return records
    finally:
        await consumer.stop()


def dead_lettered(reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "portal_mfa_deadlettered_records_total",
        {"consumer": "login_requirement", "reason": reason},
    )
    return sample or 0.0


async def test_forged_records_change_no_login_decision_and_are_dead_lettered_with_the_reason(
    setup: Setup, kafka_bootstrap: str
) -> None:
    async with setup.pool.acquire() as conn:
        await conn.execute(EVENTSTORE_SQL + read_sql("services.auth", "schema.sql"))
        projection = LoginProjection(schema=SCHEMA)
        await projection.create(conn)
        # ENROLLED has an active TOTP enrollment (epoch 0); NEW has none.
        enrollment = uuid.uuid4()
        await enrollments.create(conn, enrollment, ENROLLED, ORG, b"sealed", 0)
        row = await enrollments.get(conn, enrollment)
        assert row is not None
        await enrollments.enable(conn, row, 0, uuid.uuid4(), T0)
    await produce(
        setup.producer, setup.topics, [policy(MfaPolicyEnabled, 1), created(ENROLLED), created(NEW)]
    )
    consumer = new_consumer(
        bootstrap=kafka_bootstrap,
        topics=setup.topics,
        pool=setup.pool,
        projection=projection,
        deadletter=setup.producer,
        batch_size=50,
    )
    forged = attacks(setup.topics)
    reasons = sorted({reason for reason, *_ in forged})
    counted_before = {reason: dead_lettered(reason) for reason in reasons}

    async with setup.pool.acquire() as conn, running(consumer) as task:

        def applied(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return consumer.applied >= n

            return check

        await until(applied(3), within=20, what="the genuine history", watch=[task])
        assert await decisions(conn, projection) == {ENROLLED: "totp", NEW: "enroll"}
        rows_before = await raw_rows(conn, SCHEMA)

        sent = []
        for reason, topic, key, value, headers in forged:
            meta = await (await setup.producer.send(topic, value=value, key=key, headers=headers))
            sent.append((reason, topic, meta.partition, meta.offset))

        async def all_refused() -> bool:
            return consumer.dead_lettered >= len(forged)

        await until(all_refused, within=20, what="every forgery dead-lettered", watch=[task])
        assert consumer.applied == 3, "nothing forged was applied"
        assert await raw_rows(conn, SCHEMA) == rows_before
        assert await decisions(conn, projection) == {ENROLLED: "totp", NEW: "enroll"}

        dead = await dead_letters(kafka_bootstrap, setup.topics[DEADLETTER], len(forged))
        seen = sorted(
            (
                h["error"],
                h["original_topic"],
                int(h["original_partition"]),
                int(h["original_offset"]),
            )
            for h in ({n: v.decode() for n, v in r.headers} for r in dead)
        )
        assert seen == sorted(sent)
        for reason in reasons:
            expected = sum(1 for r, *_ in forged if r == reason)
            assert dead_lettered(reason) - counted_before[reason] == expected, reason

        # The versions the forgeries claimed are still free for the genuine events.
        await produce(setup.producer, setup.topics, [policy(MfaPolicyDisabled, 2), reset(2)])
        await until(applied(5), within=20, what="the genuine events", watch=[task])
        assert await decisions(conn, projection) == {ENROLLED: "password", NEW: "password"}
        policy_row = await projection.policy(conn, ORG)
        assert (policy_row.version, policy_row.mfa_enabled) == (2, False)
        assert consumer.dead_lettered == len(forged)

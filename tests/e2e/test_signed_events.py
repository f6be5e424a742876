"""Issue: anyone who can write to an event topic rewrites the login decision for good.

On the running dev stack, the attacker publishes straight onto the event topics: a forged
`MfaPolicyDisabled` for the demo org and a forged `MfaReset` for the demo contact, with
versions far ahead (so a believing projection would keep them forever). Auth's answer must
not move, each record must be on `portal.deadletter` with its reason (from both the auth
projection and the audit log), and `audit verify` must find the stored log intact.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from portal_mfa.seed import DEMO_ORG
from shared.contracts import (
    DEADLETTER,
    Cause,
    Empty,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaReset,
    MfaResetPayload,
)
from shared.signing import RecordSigner
from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e

DEMO_CONTACT = "demo-customer"
FAR_AHEAD = 1_000_000
CAUSE = Cause(actor="attacker", at=datetime.now(UTC))

Sent = tuple[str, int, int]  # topic, partition, offset


def forgeries() -> list[tuple[EventEnvelope, RecordSigner | None, str]]:
    disabled = MfaPolicyDisabled.new(
        org_id=DEMO_ORG, aggregate_id=DEMO_ORG, aggregate_version=FAR_AHEAD,
        payload=Empty(), cause=CAUSE,
    )  # fmt: skip
    reset = MfaReset.new(
        org_id=DEMO_ORG, aggregate_id=DEMO_CONTACT, aggregate_version=FAR_AHEAD,
        payload=MfaResetPayload(mfa_epoch=FAR_AHEAD, reason="forged"), cause=CAUSE,
    )  # fmt: skip
    # A key of the attacker's own, under a name like the dev stack's.
    stranger = RecordSigner.generate("dev-preferences-00000000")
    return [
        (disabled, None, "unsigned"),
        (disabled, stranger, "unknown signer"),
        (reset, None, "unsigned"),
    ]


async def publish(bootstrap: str) -> dict[Sent, str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent: dict[Sent, str] = {}
        for event, signer, reason in forgeries():
            key, value = event.kafka_key(), event.to_json()
            headers = event.kafka_headers() + (signer.headers(key, value) if signer else [])
            meta = await producer.send_and_wait(event.topic, value=value, key=key, headers=headers)
            sent[(meta.topic, meta.partition, meta.offset)] = reason
        return sent
    finally:
        await producer.stop()


async def dead_letters_of(
    bootstrap: str, sent: dict[Sent, str], within_s: float
) -> dict[tuple[Sent, str], str]:
    """(original position, consumer) -> error, for the sent records, once both consumers refused."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(DEADLETTER, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        found: dict[tuple[Sent, str], str] = {}
        deadline = time.monotonic() + within_s
        while len(found) < 2 * len(sent) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for record in (r for part in batch.values() for r in part):
                h = {name: value.decode() for name, value in record.headers}
                origin = (
                    h.get("original_topic", ""),
                    int(h.get("original_partition", -1)),
                    int(h.get("original_offset", -1)),
                )
                if origin in sent:
                    found[(origin, h["consumer"])] = h["error"]
        return found
    finally:
        await consumer.stop()


def test_forged_events_on_the_topics_change_nothing_and_are_dead_lettered(
    stack: RunningStack,
) -> None:
    auth = httpx.Client(base_url=stack.url("auth"), timeout=10, headers=stack.bearer(DEMO_ORG))
    path = f"/v1/orgs/{DEMO_ORG}/contacts/{DEMO_CONTACT}/login-requirement"
    before: dict[str, Any] = auth.get(path).json()
    assert before["policy_enabled"] is True, "the demo org's policy is on"

    sent = asyncio.run(publish(stack.kafka))
    refused = asyncio.run(dead_letters_of(stack.kafka, sent, within_s=20))

    expected = {
        (origin, consumer): reason
        for origin, reason in sent.items()
        for consumer in ("login_requirement", "audit_log")
    }
    assert refused == expected
    after = auth.get(path).json()
    assert after == before, "the forged policy switch and reset changed the decision"
    status = stack.cli_json("admin", "--org", DEMO_ORG, "mfa", "status")
    assert status["mfa_enabled"] is True

    # The audit log stored none of it, and what it stored verifies.
    report = stack.cli_json("audit", "verify", "--org", DEMO_ORG)
    assert report["events_checked"] >= 4
    assert (report["forged"], report["gaps"], report["chain_ok"]) == (0, 0, True)
    whole = stack.cli_json("audit", "verify")
    assert (whole["forged"], whole["gaps"], whole["chain_ok"]) == (0, 0, True), whole

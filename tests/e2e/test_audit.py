"""The event log for its readers: `audit tail` and `audit explain` after a real scenario."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import EVENT_TOPICS
from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e


def eventually(check: Callable[[], Any], within_s: float = 10.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def tail(stack: RunningStack, org: str) -> list[dict[str, Any]]:
    lines = stack.cli("audit", "tail", "--org", org, "--json").stdout.splitlines()
    return [json.loads(line) for line in lines]


async def org_events_on_kafka(bootstrap: str, org: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in EVENT_TOPICS
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        empty = 0
        while empty < 3:
            batch = await consumer.getmany(timeout_ms=400)
            records = [r for part in batch.values() for r in part]
            empty = 0 if records else empty + 1
            found += [
                e for r in records if (e := json.loads(r.value or b"{}")).get("org_id") == org
            ]
        return found
    finally:
        await consumer.stop()


def test_tail_and_explain_after_policy_on_enroll_reset_policy_off(stack: RunningStack) -> None:
    org = f"audit-{uuid.uuid4().hex[:8]}"
    email = f"{org}@example.com"
    password = "audit-password-1"
    auth = httpx.Client(base_url=stack.url("auth"), timeout=10)

    def requirement(contact_id: str) -> dict[str, Any]:
        path = f"/v1/orgs/{org}/contacts/{contact_id}/login-requirement"
        return auth.get(path, headers=stack.bearer(org, "audit")).json()  # type: ignore[no-any-return]

    stack.cli_json("admin", "--org", org, "mfa", "enable")
    contact = stack.cli_json(
        "admin", "--org", org, "contacts", "add", "--kind", "customer", "--name", "Aud",
        "--email", email,
    )["contact_id"]  # fmt: skip
    token = stack.cli_json("admin", "--org", org, "contacts", "grant-portal-access", contact)[
        "invitation_token"
    ]
    accept = {"token": token, "password": password}
    assert eventually(
        lambda: auth.post(f"/v1/portals/{org}/invitations/accept", json=accept).status_code == 204
    )
    moment_policy_on = datetime.now(UTC)

    enrollment = auth.post(f"/v1/portals/{org}/login", json={"email": email, "password": password})
    enrollment_token = enrollment.json()["enrollment_token"]
    secret = auth.post(
        "/v1/mfa/enrollment/start", json={"enrollment_token": enrollment_token}
    ).json()["secret"]
    verified = auth.post(
        "/v1/mfa/enrollment/verify",
        json={"enrollment_token": enrollment_token, "otp": pyotp.TOTP(secret).now()},
    )
    assert verified.status_code == 200
    assert (
        auth.post(
            "/v1/mfa/enrollment/enable", json={"enrollment_token": enrollment_token}
        ).status_code
        == 200
    )
    time.sleep(0.05)
    moment_enrolled = datetime.now(UTC)

    stack.cli_json("admin", "--org", org, "contacts", "reset-mfa", contact, "--reason", "lost")
    stack.cli_json("admin", "--org", org, "mfa", "disable")
    final = eventually(lambda: (r := requirement(contact))["requirement"] == "password" and r)
    assert final, "auth should see the reset and the disabled policy"

    # The audit log has every event of the scenario, once, in per-aggregate order.
    on_kafka = asyncio.run(org_events_on_kafka(stack.kafka, org))
    expected_ids = {e["event_id"] for e in on_kafka}
    stored = eventually(
        lambda: (t := tail(stack, org)) and {e["event_id"] for e in t} >= expected_ids and t
    )
    assert stored, "the audit log should catch up with the topics"
    ids = [e["event_id"] for e in stored]
    assert len(ids) == len(set(ids)), "every event once"
    assert set(ids) == expected_ids
    versions: dict[tuple[str, str], list[int]] = defaultdict(list)
    for envelope in stored:
        versions[(envelope["aggregate_type"], envelope["aggregate_id"])].append(
            envelope["aggregate_version"]
        )
    for aggregate, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"{aggregate} out of order: {seen}"
    types = [e["event_type"] for e in stored]
    for expected in ("MfaPolicyEnabled", "MfaEnrolled", "MfaReset", "MfaPolicyDisabled"):
        assert expected in types

    by_type = {e["event_type"]: e["event_id"] for e in stored}

    def explain(at: datetime) -> dict[str, Any]:
        return stack.cli_json(  # type: ignore[no-any-return]
            "audit", "explain", "--org", org, "--contact", contact, "--at", at.isoformat()
        )

    assert explain(moment_policy_on) == {
        "requirement": "enroll",
        "policy_enabled": True,
        "enrolled": False,
        "mfa_epoch": 0,
        "decided_by": [by_type["MfaPolicyEnabled"]],
    }
    assert explain(moment_enrolled) == {
        "requirement": "totp",
        "policy_enabled": True,
        "enrolled": True,
        "mfa_epoch": 0,
        "decided_by": [by_type["MfaPolicyEnabled"], by_type["MfaEnrolled"]],
    }
    now = explain(datetime.now(UTC))
    assert now == {
        "requirement": "password",
        "policy_enabled": False,
        "enrolled": False,
        "mfa_epoch": 1,
        "decided_by": [by_type["MfaPolicyDisabled"], by_type["MfaReset"]],
    }
    # For the present moment it agrees with auth's own answer.
    assert {k: final[k] for k in now} == now


def test_events_carry_the_admin_as_actor(stack: RunningStack) -> None:
    org = f"actor-{uuid.uuid4().hex[:8]}"
    stack.cli_json("admin", "--org", org, "mfa", "enable")  # PORTAL_MFA_ADMIN=e2e-admin
    stack.cli_json("admin", "--org", org, "--actor", "alice@acme", "mfa", "disable")
    found = eventually(lambda: len(t := tail(stack, org)) == 2 and t)
    assert found, "both events should reach the audit log"
    assert [(e["event_type"], e["actor"]) for e in found] == [
        ("MfaPolicyEnabled", "e2e-admin"),
        ("MfaPolicyDisabled", "alice@acme"),
    ]
    only_disabled = stack.cli(
        "audit", "tail", "--org", org, "--type", "MfaPolicyDisabled", "--json"
    )
    assert [json.loads(line)["actor"] for line in only_disabled.stdout.splitlines()] == [
        "alice@acme"
    ]


def test_tail_follow_streams_new_events(stack: RunningStack) -> None:
    org = f"follow-{uuid.uuid4().hex[:8]}"
    follower = subprocess.Popen(
        [sys.executable, "-m", "portal_mfa", "audit", "tail", "--follow", "--org", org, "--json"],
        env=stack.cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        stack.cli_json("admin", "--org", org, "mfa", "enable")
        assert follower.stdout is not None
        line = follower.stdout.readline()  # blocks until the event is streamed
        assert json.loads(line)["event_type"] == "MfaPolicyEnabled"
        assert follower.poll() is None, "--follow keeps running"
    finally:
        follower.kill()
        follower.wait()

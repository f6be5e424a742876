"""Who may speak as an admin, played by an attacker on the running stack (DESIGN.md §11).

The attacker can reach the broker: it publishes raw commands onto the command topic with
its own aiokafka producer (a `reply_to` header, as the console does) and reads what any
reader of the topics sees. Each attempt must be answered with a rejection and change
nothing: the contact's state and its login requirement stay, and no event appears.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.admin_identity import AssertionIssuer
from shared.contracts import ADMIN_REPLIES, CONTACTS_COMMANDS, CONTACTS_EVENTS, ResetPortalMfa
from tests.dev_stack import RunningStack
from tests.e2e.portal_client import PROBLEM_BASE, Portal, assert_problem, new_email, wait_until

pytestmark = pytest.mark.e2e


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of the topic from offset 0 (until fetches come back empty)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        empty = 0
        # The dev broker's high-water mark is unreliable: read until fetches come back empty.
        while empty < 3:
            batch = await consumer.getmany(timeout_ms=300)
            records = [r for part in batch.values() for r in part]
            empty = 0 if records else empty + 1
            found += records
        return found
    finally:
        await consumer.stop()


def read_topic(stack: RunningStack, topic: str) -> list[Any]:
    return asyncio.run(_read_topic(stack.kafka, topic))


async def _publish_raw(
    bootstrap: str, value: bytes, key: str, reply_to: str = ADMIN_REPLIES
) -> dict[str, Any]:
    """Publish bytes straight onto the contacts command topic; the reply that comes back."""
    correlation = str(uuid.uuid4())
    replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await replies.start()
    await producer.start()
    try:
        tp = TopicPartition(ADMIN_REPLIES, 0)
        replies.assign([tp])
        await replies.seek_to_end(tp)
        await replies.position(tp)
        await producer.send_and_wait(
            CONTACTS_COMMANDS,
            value=value,
            key=key.encode(),
            headers=[
                ("reply_to", reply_to.encode()),
                ("correlation_id", correlation.encode()),
                ("content-type", b"application/json"),
            ],
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            batch = await replies.getmany(timeout_ms=300)
            for record in (r for part in batch.values() for r in part):
                headers = {k: v.decode() for k, v in record.headers}
                if headers.get("correlation_id") == correlation:
                    reply: dict[str, Any] = json.loads(record.value)
                    reply["correlation_id"] = correlation
                    return reply
        raise AssertionError("no reply on the admin reply topic")
    finally:
        await producer.stop()
        await replies.stop()


def publish_raw(stack: RunningStack, value: bytes, key: str, **kw: str) -> dict[str, Any]:
    return asyncio.run(_publish_raw(stack.kafka, value, key, **kw))


def test_forged_and_replayed_commands_are_rejected_and_change_nothing(
    stack: RunningStack, portal: Portal
) -> None:
    org = portal.org
    portal.set_policy(True)
    victim, bystander = (
        portal.admin(
            "contacts", "add", "--kind", kind, "--name", f"Target {kind}", "--email", new_email()
        )["contact_id"]
        for kind in ("customer", "vendor")
    )
    # The admin's own reset, which the attacker then finds on the command topic.
    assert portal.admin("contacts", "reset-mfa", victim, "--reason", "asked")["mfa_epoch"] == 1
    for contact in (victim, bystander):
        portal.requirement_now(contact, known=True, policy_enabled=True)
    portal.requirement_now(victim, mfa_epoch=1)
    captured = next(
        json.loads(r.value)
        for r in reversed(read_topic(stack, CONTACTS_COMMANDS))
        if json.loads(r.value).get("contact_id") == victim
        and json.loads(r.value).get("command_type") == "ResetPortalMfa"
    )
    assert captured["assertion"], "the admin's command carries its assertion"
    assert "actor" not in captured

    def contact_views() -> list[dict[str, Any]]:
        return [portal.admin("contacts", "show", c) for c in (victim, bystander)]

    def requirements() -> list[dict[str, Any]]:
        return [portal.requirement(c) for c in (victim, bystander)]

    def org_events() -> list[str]:
        return [
            json.loads(r.value)["event_id"]
            for r in read_topic(stack, CONTACTS_EVENTS)
            if json.loads(r.value).get("org_id") == org
        ]

    before = (contact_views(), requirements(), org_events())

    dev = stack.issuer()
    dev_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(dev.private_text))
    long_ago = AssertionIssuer(
        dev_key,
        key_id=dev.key_id,
        issuer=dev.issuer,
        clock=lambda: datetime.now(UTC) - timedelta(hours=1),
    )
    stranger = AssertionIssuer.generate(key_id="idp-attacker", issuer=dev.issuer)
    reset = ResetPortalMfa(org_id=org, contact_id=victim, reason="attacker")
    attempts = {
        "(a) no assertion": (reset, "unauthenticated"),
        "(b) expired": (reset.signed_by(long_ago, "mallory"), "unauthenticated"),
        "(c) another org's": (
            reset.signed(dev.mint(sub="mallory", org="mallory-org", cmd=reset.digest()).token),
            "forbidden",
        ),
        "(d) unknown key": (reset.signed_by(stranger, "mallory"), "unauthenticated"),
    }
    for name, (command, code) in attempts.items():
        reply = publish_raw(stack, command.model_dump_json().encode(), victim)
        assert reply["ok"] is False, name
        assert reply["rejection"]["code"] == code, (name, reply)
    replayed = {
        "(e) re-sent with a new command_id": (
            {**captured, "command_id": str(uuid.uuid4())},
            victim,
        ),
        "(f) retargeted at another contact": (
            {**captured, "contact_id": bystander, "command_id": str(uuid.uuid4())},
            bystander,
        ),
        "(f) retargeted, same command_id": ({**captured, "contact_id": bystander}, bystander),
    }
    for name, (body, key) in replayed.items():
        reply = publish_raw(stack, json.dumps(body).encode(), key)
        assert reply["ok"] is False, name
        assert reply["rejection"]["code"] == "forbidden", (name, reply)

    # A reply never lands anywhere but the admin reply topic, whatever reply_to says.
    diverted = publish_raw(
        stack, reset.model_dump_json().encode(), victim, reply_to=CONTACTS_EVENTS
    )
    assert diverted["ok"] is False

    # A legitimate command after all that: once its event is out, any from the attacks
    # would be too (one outbox, relayed in order).
    marker = portal.admin(
        "contacts", "add", "--kind", "vendor", "--name", "Marker", "--email", new_email()
    )["contact_id"]
    portal.requirement_now(marker, known=True)
    after_events = org_events()
    assert len(after_events) == len(before[2]) + 1, "only the marker's ContactCreated is new"
    assert contact_views() == before[0]
    assert requirements() == before[1]
    correlations = {
        dict((k, v.decode()) for k, v in r.headers).get("correlation_id")
        for r in read_topic(stack, CONTACTS_EVENTS)
    }
    assert diverted["correlation_id"] not in correlations

    # The audit log agrees, and the one reset there is the admin's, by the assertion's sub.
    logged = [
        json.loads(line)
        for line in stack.cli("audit", "tail", "--org", org, "--json").stdout.splitlines()
    ]
    resets = [e for e in logged if e["event_type"] == "MfaReset"]
    assert [(e["aggregate_id"], e["actor"]) for e in resets] == [(victim, "e2e-admin")]


def test_a_token_from_the_identity_provider_authorizes_one_command(
    stack: RunningStack, portal: Portal
) -> None:
    token = portal.admin("token")
    assert set(token) == {"token", "expires_at"}
    env = {"PORTAL_MFA_ADMIN_TOKEN": token["token"]}

    def cli(*args: str) -> Any:
        return stack.cli_with(env, "admin", "--org", portal.org, *args, "--json")

    first = cli("mfa", "enable")
    assert first.returncode == 0, first.stderr
    # Seen on the command topic, it could be re-sent: so it works for one command only.
    second = cli("mfa", "disable")
    assert second.returncode == 1
    assert "already used" in second.stderr
    # Reads take it as long as it lives.
    for _ in range(2):
        status = cli("mfa", "status")
        assert json.loads(status.stdout) == {
            "org_id": portal.org,
            "mfa_enabled": True,
            "portal_name": portal.org,
        }
    named = stack.cli_with(env, "admin", "--org", portal.org, "--actor", "eve", "mfa", "status")
    assert named.returncode != 0 and "--actor" in named.stderr


def test_admin_reads_need_an_assertion_for_their_org(stack: RunningStack, portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    org, other = portal.org, f"other-{uuid.uuid4().hex[:8]}"
    reads = [
        ("auth", f"/v1/orgs/{org}/contacts/{user.contact_id}/login-requirement", "audit"),
        ("audit", f"/v1/orgs/{org}/contacts/{user.contact_id}/explain", "audit"),
        ("audit", f"/v1/events?org={org}", "audit"),
        ("preferences", f"/v1/orgs/{org}/mfa-policy", "admin"),
        ("contacts", f"/v1/orgs/{org}/contacts", "admin"),
        ("contacts", f"/v1/orgs/{org}/contacts/{user.contact_id}", "admin"),
    ]
    dev = stack.issuer()
    stranger = AssertionIssuer.generate(key_id="idp-attacker", issuer=dev.issuer)
    for service, path, scope in reads:
        url = stack.url(service, path)
        where = f"{service} {path}"
        unauthenticated = assert_problem(httpx.get(url), 401, "unauthenticated")
        assert unauthenticated["title"], where
        assert httpx.get(url).headers.get("www-authenticate") == "Bearer", where
        forged = {"Authorization": f"Bearer {stranger.mint(sub='m', org=org).token}"}
        assert_problem(httpx.get(url, headers=forged), 401, "unauthenticated")
        assert_problem(httpx.get(url, headers=stack.bearer(other, scope)), 403, "forbidden")
        answer = httpx.get(url, headers=stack.bearer(org, scope))
        assert answer.status_code == 200, (where, answer.text)
        operator = httpx.get(url, headers=stack.bearer("*", scope))
        assert operator.status_code == 200, (where, operator.text)
    # Not a bearer of anything else, and not one made for a command (seen on the topic).
    url = stack.url("contacts", f"/v1/orgs/{org}/contacts")
    bound = dev.mint(sub="m", org=org, cmd="0" * 64).token
    assert_problem(httpx.get(url, headers={"Authorization": f"Bearer {bound}"}), 403, "forbidden")
    assert_problem(httpx.get(url, headers={"Authorization": "Basic eDp5"}), 401)
    # An auditor reads the audit log, not the contacts.
    assert_problem(httpx.get(url, headers=stack.bearer(org, "audit")), 403, "forbidden")
    # The whole log, every org at once: operators only.
    everything = stack.url("audit", "/v1/events")
    assert_problem(httpx.get(everything, headers=stack.bearer(org, "audit")), 403, "forbidden")
    assert httpx.get(everything, headers=stack.bearer("*", "audit")).status_code == 200
    # Another org's contact is a 404 exactly like a missing one, with the right assertion.
    missing = httpx.get(
        stack.url("contacts", f"/v1/orgs/{other}/contacts/{user.contact_id}"),
        headers=stack.bearer(other),
    )
    body = assert_problem(missing, 404)
    assert body["type"] == PROBLEM_BASE + "not-found"
    assert wait_until(lambda: portal.requirement(user.contact_id)["known"])

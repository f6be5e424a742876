"""No password, TOTP secret, code, backup code or token in any event or log line, and no
personal data in any command reply.

Runs after the other e2e modules (file order), so the topics it reads hold the events and
replies of the whole end-to-end suite; its own journey records every secret it handles,
and every event and log line is searched for those and for anything shaped like one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx
import pyotp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import ADMIN_REPLIES, CONTACTS_EVENTS, DEADLETTER, EVENT_TOPICS
from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e

# What a leaked secret would look like: a base32 TOTP secret, a backup code, a token.
SHAPES = {
    "totp secret": re.compile(r"(?<![A-Z2-7])[A-Z2-7]{32}(?![A-Z2-7])"),
    "backup code": re.compile(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b"),
    "token": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    "admin assertion": re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),
    # An Ed25519 seed or an AEAD key as the settings carry them: 32 bytes, base64.
    "raw key": re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def code_in(code: str, text: str) -> bool:
    """A 6-digit code standing alone: not inside a longer number, an id or a fraction of
    a second (every JSON log line carries microseconds)."""
    return re.search(rf"(?<![\w.]){code}(?!\w)", text) is not None


def journey(stack: RunningStack) -> tuple[list[str], list[str]]:
    """Every step of the seed page; returns every secret value it saw, and the codes."""
    org = f"leak-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    secrets = [password]
    stack.cli_json("admin", "--org", org, "mfa", "enable")
    contact = stack.cli_json(
        "admin", "--org", org, "contacts", "add", "--kind", "vendor", "--name", "V",
        "--email", f"{org}@example.com",
    )  # fmt: skip
    invitation = stack.cli_json(
        "admin", "--org", org, "contacts", "grant-portal-access", contact["contact_id"]
    )
    secrets.append(invitation["invitation_token"])
    auth = httpx.Client(base_url=stack.url("auth"), timeout=10)
    deadline = time.monotonic() + 10
    while (
        auth.post(
            f"/v1/portals/{org}/invitations/accept",
            json={"token": invitation["invitation_token"], "password": password},
        ).status_code
        != 204
    ):
        assert time.monotonic() < deadline, "invitation never reached auth"
        time.sleep(0.05)
    login = {"email": f"{org}@example.com", "password": password}
    enrollment_token = auth.post(f"/v1/portals/{org}/login", json=login).json()["enrollment_token"]
    secrets.append(enrollment_token)
    started = auth.post("/v1/mfa/enrollment/start", json={"enrollment_token": enrollment_token})
    secret = started.json()["secret"]
    totp = pyotp.TOTP(secret)
    verify_code = totp.now()
    secrets.append(secret)
    codes = [verify_code]
    backup = auth.post(
        "/v1/mfa/enrollment/verify", json={"enrollment_token": enrollment_token, "otp": verify_code}
    ).json()["backup_codes"]
    secrets += backup
    session = auth.post(
        "/v1/mfa/enrollment/enable", json={"enrollment_token": enrollment_token}
    ).json()["session_token"]
    secrets.append(session)
    challenge = auth.post(f"/v1/portals/{org}/login", json=login).json()["challenge_token"]
    secrets.append(challenge)
    wrong = auth.post("/v1/mfa/challenge", json={"challenge_token": challenge, "otp": "000000"})
    assert wrong.status_code == 401
    answered = auth.post(
        "/v1/mfa/challenge", json={"challenge_token": challenge, "backup_code": backup[0]}
    )
    assert answered.status_code == 200
    secrets.append(answered.json()["session_token"])
    # A code from the app at the challenge (the next step: this one is spent), then the
    # same code again (a replay), so each path a code takes is searched for it.
    code = totp.at(time.time() + 30)
    codes.append(code)
    for _ in range(2):
        challenge = auth.post(f"/v1/portals/{org}/login", json=login).json()["challenge_token"]
        secrets.append(challenge)
        auth.post("/v1/mfa/challenge", json={"challenge_token": challenge, "otp": code})
    return secrets, codes


async def read_all(bootstrap: str, topics: list[str]) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        empty_polls = 0
        # The dev broker's high-water mark is unreliable: read until fetches come back empty.
        while empty_polls < 3:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for part in batch.values() for r in part]
            empty_polls = 0 if records else empty_polls + 1
            for record in records:
                values.append(record.value or b"")
                values.extend(value for _, value in record.headers)
        return values
    finally:
        await consumer.stop()


def test_no_secret_in_any_event_or_log_line(stack: RunningStack) -> None:
    """Every service's log lines (tracebacks included) and every span the suite exported."""
    secrets, codes = journey(stack)
    events = asyncio.run(read_all(stack.kafka, [*EVENT_TOPICS, DEADLETTER]))
    assert len(events) > 20, "the suite should have produced events to search"
    logs = "".join(stack.output)
    assert '"logger": "portal_mfa.access"' in logs, "the services should log as JSON lines"
    spans = "\n".join(json.dumps(span) for span in stack.spans())
    assert len(spans) > 1000, "the stack should have exported spans to search"
    texts = {
        "events": b"\n".join(events).decode(errors="replace"),
        "logs": logs,
        "spans": spans,
    }
    for where, text in texts.items():
        for value in secrets:
            assert value not in text, f"a secret reached the {where}"
        for code in codes:
            assert not code_in(code, text), f"a code the app made reached the {where}"
        for shape, pattern in SHAPES.items():
            found = pattern.findall(text)
            assert not found, f"something shaped like a {shape} reached the {where}: {found[:3]}"


def test_replies_carry_no_invitation_token(stack: RunningStack) -> None:
    org = f"reply-{uuid.uuid4().hex[:8]}"
    contact = stack.cli_json(
        "admin", "--org", org, "contacts", "add", "--kind", "customer", "--name", "C",
        "--email", f"{org}@example.com",
    )  # fmt: skip
    token = stack.cli_json(
        "admin", "--org", org, "contacts", "grant-portal-access", contact["contact_id"]
    )["invitation_token"]
    replies = asyncio.run(read_all(stack.kafka, [ADMIN_REPLIES]))
    assert replies
    assert not any(token.encode() in value for value in replies)


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_replies_carry_no_personal_data(stack: RunningStack) -> None:
    """Every reply of the session: no contact's email or name (all readers see replies).

    It makes its own contacts and commands first, so it holds even when run alone; run
    with the rest of the suite it also searches every other module's replies."""
    org = f"pii-{uuid.uuid4().hex[:8]}"
    stack.cli_json("admin", "--org", org, "mfa", "enable")
    for n in range(3):
        contact = stack.cli_json(
            "admin", "--org", org, "contacts", "add", "--kind", "customer",
            "--name", f"Personal Name {org} {n}", "--email", f"person{n}-{org}@example.com",
        )  # fmt: skip
        stack.cli_json(
            "admin", "--org", org, "contacts", "grant-portal-access", contact["contact_id"]
        )
        stack.cli_json("admin", "--org", org, "contacts", "reset-mfa", contact["contact_id"])
    created = [
        json.loads(value)
        for value in asyncio.run(read_all(stack.kafka, [CONTACTS_EVENTS]))
        if value.startswith(b"{") and b'"ContactCreated"' in value
    ]
    personal = {e["payload"]["email"] for e in created} | {
        e["payload"]["display_name"] for e in created
    }
    assert len(created) >= 3, "the contacts made above should be on the topic"
    replies = [
        json.loads(value)
        for value in asyncio.run(read_all(stack.kafka, [ADMIN_REPLIES]))
        if value.startswith(b"{")
    ]
    assert len(replies) >= 10
    for reply in replies:
        for text in _strings(reply):
            assert not EMAIL.search(text), f"an email address in a reply: {reply}"
            for data in personal:
                # Short names ("V") only as a whole value, longer ones anywhere in a text.
                assert text != data and (len(data) < 4 or data not in text), reply

"""Issue: a forged event with a very high version switched an org's MFA policy off.

The attacker writes one record straight onto `portal.preferences.events`: the demo org's
`MfaPolicyDisabled` at version 50, while its genuine stream is at version 2. Whatever
refuses it (a missing signature where records are signed; the gap before version 50
here), the login decision must not change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from portal_mfa.seed import DEMO_EMAIL, DEMO_ORG, DEMO_PASSWORD
from shared.contracts import PREFERENCES_EVENTS, Cause, Empty, MfaPolicyDisabled, now_utc
from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e

DEMO_CONTACT = "demo-customer"


async def publish_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def issuer_seen_at_enrollment(auth: httpx.Client) -> str:
    """The portal name auth shows the demo contact (the issuer of its otpauth URI)."""
    login = auth.post(
        f"/v1/portals/{DEMO_ORG}/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    )
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["status"] == "mfa_enrollment_required", "the policy still requires MFA"
    started = auth.post(
        "/v1/mfa/enrollment/start", json={"enrollment_token": body["enrollment_token"]}
    )
    assert started.status_code == 200, started.text
    return parse_qs(urlsplit(started.json()["otpauth_uri"]).query)["issuer"][0]


def test_a_forged_high_version_policy_event_does_not_switch_mfa_off(
    stack: RunningStack,
) -> None:
    auth = httpx.Client(base_url=stack.url("auth"), timeout=30, headers=stack.bearer(DEMO_ORG))
    path = f"/v1/orgs/{DEMO_ORG}/contacts/{DEMO_CONTACT}/login-requirement"
    before = auth.get(path).json()
    assert (before["requirement"], before["policy_enabled"]) == ("enroll", True)

    forged = MfaPolicyDisabled.new(
        org_id=DEMO_ORG,
        aggregate_id=DEMO_ORG,
        aggregate_version=50,
        payload=Empty(),
        cause=Cause(actor="attacker", at=now_utc()),
    )
    asyncio.run(publish_raw(stack.kafka, PREFERENCES_EVENTS, DEMO_ORG.encode(), forged.to_json()))

    # A genuine event of the same stream, after the forged one on the same partition: once
    # auth shows it, auth has read the forged record too.
    name = f"Demo Portal {uuid.uuid4().hex[:6]}"
    stack.cli("admin", "--org", DEMO_ORG, "portal", "name", name)
    deadline = time.monotonic() + 10
    while issuer_seen_at_enrollment(auth) != name:
        assert time.monotonic() < deadline, "the genuine portal name never reached auth"
        time.sleep(0.05)

    after = auth.get(path).json()
    assert (after["requirement"], after["policy_enabled"]) == ("enroll", True)
    assert after["decided_by"] == before["decided_by"], "the forged event decided nothing"
    ready = auth.get("/readyz")
    assert ready.status_code == 200, "one org's gap leaves every other login working"
    assert ready.json()["ready"] is True

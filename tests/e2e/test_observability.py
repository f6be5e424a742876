"""Operating the running system: what an operator's Prometheus, log search and trace
viewer see after real traffic — a login journey with every kind of failure an attacker
causes (wrong codes, a replayed code, a lockout, a wrong password, forged records on an
event topic) and admin commands accepted and refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shared.contracts import PREFERENCES_EVENTS, Cause, Empty, MfaPolicyDisabled
from tests.dev_stack import RunningStack
from tests.e2e.portal_client import PASSWORD, Portal, User, wait_until

pytestmark = pytest.mark.e2e

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def portal(stack: RunningStack) -> Iterator[Portal]:
    org = Portal(stack)
    yield org
    org.close()


@pytest.fixture(scope="module")
def traffic(stack: RunningStack, portal: Portal) -> User:
    """Every outcome the metrics count, caused the way users and attackers cause them."""
    (user,) = portal.prepare("vendor", policy=True)
    enrolled = portal.enroll(user)
    # A backup code, then a code from the app, then that same code again (a replay).
    challenge = portal.login_as(user, "mfa_required")["challenge_token"]
    used = portal.challenge(challenge, backup_code=enrolled.backup_codes[0])
    assert used.status_code == 200
    code = enrolled.app.code()
    assert portal.challenge(portal.login_as(user, "mfa_required")["challenge_token"], otp=code)
    replayed = portal.challenge(portal.login_as(user, "mfa_required")["challenge_token"], otp=code)
    assert replayed.status_code == 401
    # A wrong password while the MFA step is still open (once it locks, the password
    # step answers 429 to right and wrong passwords alike).
    assert portal.login(user, "not-the-password").status_code == 401
    # Wrong codes until the MFA step locks (then even the password step answers 429).
    for _ in range(6):
        answer = portal.login(user)
        if answer.status_code == 429:
            break
        challenge = answer.json()["challenge_token"]
        assert portal.challenge(challenge, otp=enrolled.app.wrong_code()).status_code in (401, 429)
    assert answer.status_code == 429, "five failed second factors should lock the MFA step"
    assert portal.login(user, "not-the-password").status_code == 429
    # An admin command the service refuses, and a record nobody signed.
    portal.admin_rejected("contacts", "reset-mfa", str(uuid.uuid4()))
    asyncio.run(publish_unsigned(stack.kafka, portal.org))
    return user


async def publish_unsigned(bootstrap: str, org: str) -> None:
    forged = MfaPolicyDisabled.new(
        org_id=org, aggregate_id=org, aggregate_version=1_000_000, payload=Empty(),
        cause=Cause(actor="attacker", at=datetime.now(UTC)),
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            PREFERENCES_EVENTS, value=forged.to_json(), key=forged.kafka_key(),
            headers=forged.kafka_headers(),
        )  # fmt: skip
    finally:
        await producer.stop()


def scrape(stack: RunningStack, service: str) -> Samples:
    text = httpx.get(stack.url(service, "/metrics"), timeout=10).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples with these labels (0 when there are none)."""
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


# What each service must show after the traffic above, each with a non-zero sample.
COUNTED = {
    "auth": [
        (
            "portal_mfa_http_request_duration_seconds_count",
            {"handler": "/v1/portals/{org_id}/login", "method": "POST", "status": "200"},
        ),
        (
            "portal_mfa_http_request_duration_seconds_count",
            {"handler": "/v1/portals/{org_id}/login", "status": "429"},
        ),
        ("portal_mfa_logins_total", {"outcome": "succeeded", "factor": "totp"}),
        ("portal_mfa_logins_total", {"outcome": "succeeded", "factor": "backup_code"}),
        ("portal_mfa_logins_total", {"outcome": "failed", "factor": "password"}),
        ("portal_mfa_second_factor_failures_total", {"reason": "wrong_otp"}),
        ("portal_mfa_second_factor_failures_total", {"reason": "reused_otp"}),
        ("portal_mfa_lockouts_total", {}),
        ("portal_mfa_backup_codes_used_total", {}),
        ("portal_mfa_otp_replays_rejected_total", {}),
        ("portal_mfa_projection_applied_events_total", {"projection": "login_requirement"}),
        (
            "portal_mfa_deadlettered_records_total",
            {"consumer": "login_requirement", "reason": "unsigned"},
        ),
        ("portal_mfa_outbox_published_events_total", {"service": "auth"}),
        ("process_cpu_seconds_total", {}),
    ],
    "preferences": [
        ("portal_mfa_commands_total", {"command_type": "EnableMfaPolicy", "result": "accepted"}),
        ("portal_mfa_command_duration_seconds_count", {"command_type": "EnableMfaPolicy"}),
        ("portal_mfa_outbox_published_events_total", {"service": "preferences"}),
        ("portal_mfa_http_request_duration_seconds_count", {"handler": "/readyz"}),
    ],
    "contacts": [
        ("portal_mfa_commands_total", {"command_type": "CreateContact", "result": "accepted"}),
        (
            "portal_mfa_commands_total",
            {"command_type": "ResetPortalMfa", "result": "rejected", "reason": "not_found"},
        ),
        ("portal_mfa_outbox_published_events_total", {"service": "contacts"}),
        ("portal_mfa_http_request_duration_seconds_count", {"handler": "/readyz"}),
    ],
    "audit": [
        ("portal_mfa_projection_applied_events_total", {"projection": "audit_log"}),
        ("portal_mfa_deadlettered_records_total", {"consumer": "audit_log", "reason": "unsigned"}),
        ("portal_mfa_http_request_duration_seconds_count", {"handler": "/readyz"}),
    ],
}
# Gauges that are 0 on a healthy, caught-up stack: exported, and a number.
GAUGES = {
    "auth": [
        ("portal_mfa_projection_lag_records", {"projection": "login_requirement"}),
        ("portal_mfa_projection_lag_seconds", {"projection": "login_requirement"}),
        ("portal_mfa_outbox_backlog_rows", {"service": "auth"}),
        ("portal_mfa_outbox_oldest_unsent_age_seconds", {"service": "auth"}),
    ],
    "audit": [
        ("portal_mfa_projection_lag_records", {"projection": "audit_log"}),
        ("portal_mfa_projection_lag_seconds", {"projection": "audit_log"}),
    ],
    "contacts": [("portal_mfa_outbox_backlog_rows", {"service": "contacts"})],
    "preferences": [("portal_mfa_outbox_backlog_rows", {"service": "preferences"})],
}


@pytest.mark.parametrize("service", list(COUNTED))
def test_every_metric_counts_the_traffic(stack: RunningStack, traffic: User, service: str) -> None:
    missing: list[str] = []

    def all_counted() -> bool:
        samples = scrape(stack, service)
        missing[:] = [f"{n}{lab}" for n, lab in COUNTED[service] if total(samples, n, **lab) <= 0]
        return not missing

    # Dead letters and applies happen as the consumers reach the records: poll briefly.
    with contextlib.suppress(AssertionError):
        wait_until(all_counted, timeout=15)
    assert not missing, f"{service} has no count yet for {missing}"
    samples = scrape(stack, service)
    for name, labels in GAUGES.get(service, []):
        assert any(labels.items() <= found.items() for found, _ in samples.get(name, [])), name
        value = total(samples, name, **labels)
        assert not math.isnan(value) and value >= 0, (name, value)
    if service in ("auth", "audit"):
        assert total(samples, "portal_mfa_projection_ready") == 1


def test_one_login_in_the_json_log(stack: RunningStack, portal: Portal) -> None:
    user = portal.add_user("customer")
    answer = portal.login(user)
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-ID"]
    token = answer.json()["enrollment_token"]

    def lines_of_it() -> list[dict[str, object]]:
        return [line for line in stack.log_lines() if line.get("request_id") == request_id]

    (access,) = wait_until(lines_of_it, what="the login's access log line")
    assert access["logger"] == "portal_mfa.access"
    assert access["service"] == "auth" and access["org_id"] == portal.org
    assert access["http_route"] == "/v1/portals/{org_id}/login"
    assert access["http_method"] == "POST" and access["http_status"] == 200
    assert access["correlation_id"] == request_id
    for field in ("timestamp", "level", "message", "duration_ms"):
        assert field in access
    text = str(access)
    for secret in (PASSWORD, token, user.email, user.invitation_token):
        assert secret not in text


def test_a_trace_follows_an_admin_command_to_the_projections(stack: RunningStack) -> None:
    portal = Portal(stack)  # an org of its own: this is its only CreateContact
    email = f"traced-{uuid.uuid4().hex[:8]}@example.com"
    added = portal.admin(
        "contacts", "add", "--kind", "customer", "--name", "Traced", "--email", email
    )
    contact_id = added["contact_id"]
    (sent,) = [
        s for s in stack.spans()
        if s["name"] == "portal-mfa admin CreateContact"
        and s["attributes"].get("portal_mfa.org_id") == portal.org
        and s["resource"]["attributes"]["service.name"] == "portal-mfa-cli"
    ]  # fmt: skip
    trace_id = sent["context"]["trace_id"]

    def of_trace(service: str, name: str) -> list[dict[str, object]]:
        return [
            s for s in stack.spans()
            if s["context"]["trace_id"] == trace_id and s["name"] == name
            and s["resource"]["attributes"]["service.name"] == f"portal-mfa-{service}"
        ]  # fmt: skip

    (handled,) = wait_until(lambda: of_trace("contacts", "contacts handle CreateContact"))
    assert handled["parent_id"] == sent["context"]["span_id"]
    (applied,) = wait_until(
        lambda: of_trace("auth", "login_requirement apply ContactCreated"), timeout=15
    )
    assert applied["attributes"]["portal_mfa.aggregate_id"] == contact_id
    assert wait_until(lambda: of_trace("audit", "audit_log apply ContactCreated"), timeout=15)


def test_one_command_in_the_json_log(stack: RunningStack) -> None:
    portal = Portal(stack)  # an org of its own: this is its only CreateContact
    email = f"logged-{uuid.uuid4().hex[:8]}@example.com"
    portal.admin("contacts", "add", "--kind", "customer", "--name", "Logged", "--email", email)
    (sent,) = [
        s for s in stack.spans()
        if s["name"] == "portal-mfa admin CreateContact"
        and s["attributes"].get("portal_mfa.org_id") == portal.org
    ]  # fmt: skip
    trace_id = str(sent["context"]["trace_id"]).removeprefix("0x")

    def of_the_command() -> list[dict[str, object]]:
        return [
            line for line in stack.log_lines()
            if line.get("service") == "contacts" and line.get("org_id") == portal.org
        ]  # fmt: skip

    def both() -> list[dict[str, object]] | None:
        found = of_the_command()
        return found if any(line["message"].startswith("accepted") for line in found) else None  # type: ignore[union-attr]

    lines = wait_until(both, what="the command's log lines")
    received = [line for line in lines if line["message"] == "received CreateContact"]
    done = [line for line in lines if line["message"].startswith("accepted CreateContact")]  # type: ignore[union-attr]
    assert len(received) == 1 and len(done) == 1, lines
    for line in (*received, *done):
        # Every line of the command names it: the correlation id its events carry, and the
        # trace the console started.
        assert line["logger"] == "portal_mfa.command"
        assert line["trace_id"] == trace_id
        assert uuid.UUID(str(line["correlation_id"]))
        assert line["correlation_id"] == received[0]["correlation_id"]
        assert line["command_type"] == "CreateContact"
    assert done[0]["command_outcome"] == "accepted" and isinstance(done[0]["duration_ms"], float)
    assert email not in str(lines)
    # FastStream's own per-message lines, which could name none of it, are not at INFO.
    assert not [
        line for line in stack.log_lines()
        if str(line.get("logger", "")).startswith("faststream")
        and line.get("message") in ("Received", "Processed")
    ]  # fmt: skip


def test_a_login_joins_its_callers_trace_and_its_events_carry_it_to_audit(
    stack: RunningStack, portal: Portal, traffic: User
) -> None:
    trace_id = secrets.token_hex(16)
    parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    answer = portal.http.post(
        f"/v1/portals/{portal.org}/login",
        json={"email": traffic.email, "password": "wrong-password"},
        headers={"traceparent": parent},
    )
    # The traffic left this user's MFA step locked: 429, and a LoginFailed all the same.
    assert answer.status_code == 429

    def named(name: str) -> list[dict[str, object]]:
        return [
            s for s in stack.spans() if s["context"]["trace_id"] == f"0x{trace_id}"
            and s["name"] == name
        ]  # fmt: skip

    (served,) = wait_until(lambda: named("POST /v1/portals/{org_id}/login"))
    assert served["attributes"]["http.response.status_code"] == 429
    # The LoginFailed it recorded went out through auth's outbox with the trace.
    assert wait_until(lambda: named("audit_log apply LoginFailed"), timeout=15)
    # And the event names the request as its correlation id: log line and audit agree.
    stored = httpx.get(
        stack.url("audit", "/v1/events"),
        params={"org": portal.org, "type": "LoginFailed"},
        headers=stack.bearer(portal.org, "audit"),
        timeout=10,
    ).json()["events"]
    request_id = answer.headers["X-Request-ID"]
    assert [e for e in stored if e["correlation_id"] == request_id]

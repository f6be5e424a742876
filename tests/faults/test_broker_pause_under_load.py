"""The promise on a bad day: the broker freezes under an admin's command load.

Every command the console saw accepted is applied exactly once, and once the stack has
healed by itself, every login decision auth gives equals what the audit log implies.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaError

from portal_mfa.admin_credentials import DevIssuer
from portal_mfa.command_client import CommandClient, NoAnswer
from shared.contracts import Command, DisableMfaPolicy, EnableMfaPolicy, ResetPortalMfa
from shared.settings import Settings
from tests.dev_stack import RunningStack, stack_running

pytestmark = pytest.mark.faults

PAUSE_S = 20.0
CONTACTS = 5


@pytest.fixture(scope="module")
def own_stack() -> Iterator[RunningStack]:
    with stack_running({"PORTAL_MFA_DEV_SEED": "0"}) as running:
        yield running


def _broker(stack: RunningStack) -> Any:
    for process in stack.descendants():
        if process.cmdline()[1:2] == ["broker"]:
            return process
    raise AssertionError("no embedded broker under the dev stack")


@dataclass
class Delays:
    """What the load met: sends that got no answer, and its slowest command."""

    unanswered: int = 0
    slowest_s: float = 0.0


async def _until_accepted(
    client: CommandClient, issuer: DevIssuer, command: Command, delays: Delays
) -> Any:
    """Send, and on no answer send the same command again (same id): what a careful admin does."""
    started = time.monotonic()
    while True:
        try:
            reply = await client.send(issuer.sign(command), timeout_s=3)
        except (NoAnswer, KafkaError):
            # No answer is not "not applied": the same command id is safe to send again.
            delays.unanswered += 1
            continue
        assert reply.ok, reply
        delays.slowest_s = max(delays.slowest_s, time.monotonic() - started)
        return reply.result


async def _load(
    stack: RunningStack, org: str, contacts: list[str], stop_at: float, delays: Delays
) -> tuple[Counter[str], bool | None]:
    settings = Settings(kafka_bootstrap=stack.kafka, kafka_idempotence=False)
    issuer = stack.issuer()
    resets: Counter[str] = Counter()
    policy: bool | None = None
    async with CommandClient(settings) as client:
        dev = DevIssuer(issuer, "fault-admin")
        while time.monotonic() < stop_at:
            if random.random() < 0.3:
                enable = random.random() < 0.5
                command: Command = (EnableMfaPolicy if enable else DisableMfaPolicy)(org_id=org)
                await _until_accepted(client, dev, command, delays)
                policy = enable
            else:
                contact = random.choice(contacts)
                reset = ResetPortalMfa(org_id=org, contact_id=contact)
                await _until_accepted(client, dev, reset, delays)
                resets[contact] += 1
    return resets, policy


def test_a_frozen_broker_under_command_load_loses_nothing_and_weakens_nothing(
    own_stack: RunningStack,
) -> None:
    stack = own_stack
    org = f"pause-{uuid.uuid4().hex[:8]}"
    stack.cli_json("admin", "--org", org, "mfa", "enable")
    contacts = [
        stack.cli_json(
            "admin", "--org", org, "contacts", "add", "--kind", "customer", "--name", f"C{i}",
            "--email", f"{org}-{i}@example.com",
        )["contact_id"]
        for i in range(CONTACTS)
    ]  # fmt: skip
    broker = _broker(stack)
    delays = Delays()

    async def scenario() -> tuple[Counter[str], bool | None]:
        load = asyncio.create_task(
            _load(stack, org, contacts, time.monotonic() + PAUSE_S + 10, delays)
        )
        await asyncio.sleep(3)
        broker.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(PAUSE_S)
        finally:
            broker.send_signal(signal.SIGCONT)
        return await load

    resets, policy = asyncio.run(scenario())
    assert sum(resets.values()) > 0
    # The freeze hit the load: a command was in flight through it (waiting on the frozen
    # broker, or unanswered and sent again).
    assert delays.slowest_s >= PAUSE_S / 2, delays

    admin = httpx.Client(timeout=10, headers=stack.bearer(org))
    # Applied exactly once: contacts owns the epoch, +1 per applied reset.
    for contact in contacts:
        shown = admin.get(stack.url("contacts", f"/v1/orgs/{org}/contacts/{contact}")).json()
        assert shown["mfa_epoch"] == resets[contact], (contact, shown, resets)
    if policy is not None:
        status = admin.get(stack.url("preferences", f"/v1/orgs/{org}/mfa-policy")).json()
        assert status["mfa_enabled"] is policy

    # Healed with no manual restart: auth's answers converge on what the log implies.
    deadline = time.monotonic() + 90
    while True:
        mismatched = []
        for contact in contacts:
            decided = admin.get(
                stack.url("auth", f"/v1/orgs/{org}/contacts/{contact}/login-requirement")
            )
            explained = admin.get(stack.url("audit", f"/v1/orgs/{org}/contacts/{contact}/explain"))
            if decided.status_code != 200 or explained.status_code != 200:
                mismatched.append((contact, decided.status_code, explained.status_code))
                continue
            want, got = explained.json(), decided.json()
            fields = ("requirement", "policy_enabled", "mfa_epoch")
            if [want[f] for f in fields] != [got[f] for f in fields] or (
                got["mfa_epoch"] != resets[contact]
            ):
                mismatched.append((contact, want, got))
        if not mismatched:
            break
        assert time.monotonic() < deadline, mismatched
        time.sleep(0.5)
    for service in ("auth", "preferences", "contacts", "audit"):
        assert httpx.get(stack.url(service, "/readyz"), timeout=5).status_code == 200, service

"""A command the CLI got no answer to may still apply; retried under its key, it applies once."""

from __future__ import annotations

import re
import signal
import uuid

import pytest

from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e


def test_a_timed_out_reset_retried_with_its_key_applies_exactly_once(
    stack: RunningStack,
) -> None:
    org = f"idem-{uuid.uuid4().hex[:8]}"
    contact = stack.cli_json(
        "admin", "--org", org, "contacts", "add", "--kind", "customer", "--name", "I",
        "--email", f"{org}@example.com",
    )["contact_id"]  # fmt: skip

    contacts = stack.service_process("contacts")
    contacts.send_signal(signal.SIGSTOP)  # the service hangs: the command waits on the topic
    try:
        timed_out = stack.cli_with(
            {"PORTAL_MFA_COMMAND_TIMEOUT_S": "2"},
            "admin", "--org", org, "contacts", "reset-mfa", contact, "--json",
        )  # fmt: skip
    finally:
        contacts.send_signal(signal.SIGCONT)
    assert timed_out.returncode == 4, timed_out.stderr
    assert "may still apply" in timed_out.stderr
    found = re.search(r"--idempotency-key (\S+)", timed_out.stderr)
    assert found, timed_out.stderr
    key = found.group(1)

    retried = stack.cli_json(
        "admin", "--org", org, "--idempotency-key", key, "contacts", "reset-mfa", contact
    )
    again = stack.cli_json(
        "admin", "--org", org, "--idempotency-key", key, "contacts", "reset-mfa", contact
    )
    # The first send applied once the service woke; the retries got its answer. A second
    # application would have made the epoch 2: contacts owns it.
    assert retried == again == {"contact_id": contact, "mfa_epoch": 1}
    assert stack.cli_json("admin", "--org", org, "contacts", "show", contact)["mfa_epoch"] == 1
    reused = stack.cli_with(
        {}, "admin", "--org", org, "--idempotency-key", key, "contacts", "revoke-portal-access",
        contact,
    )  # fmt: skip
    assert reused.returncode == 1
    assert "already used for a different command" in reused.stderr

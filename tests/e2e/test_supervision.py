"""A bad day on `portal-mfa dev`: a service dies, and the stack heals without losing state."""

from __future__ import annotations

import signal
import time
import uuid

import httpx
import pytest

from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e


def test_a_killed_service_is_restarted_and_keeps_its_data(stack: RunningStack) -> None:
    org = f"heal-{uuid.uuid4().hex[:8]}"
    stack.cli_json("admin", "--org", org, "mfa", "enable")
    victim = stack.service_process("preferences")
    output_before = len(stack.output)

    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    deadline = time.monotonic() + 60
    while True:
        replacement = None
        try:
            replacement = stack.service_process("preferences")
            if httpx.get(stack.url("preferences", "/readyz"), timeout=2).status_code == 200:
                break
        except (AssertionError, httpx.TransportError):
            pass
        assert time.monotonic() < deadline, "preferences was not restarted within 60 s"
        time.sleep(0.2)
    assert replacement is not None and replacement.pid != victim.pid
    # The restarted service reads the same database: the org's policy is still on.
    assert stack.cli_json("admin", "--org", org, "mfa", "status")["mfa_enabled"] is True
    said = "".join(stack.output[output_before:])
    assert "preferences exited with status" in said
    assert "preferences: restarted" in said

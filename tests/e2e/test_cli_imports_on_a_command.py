"""An admin command against the running system loads only what it uses: a change sent
over Kafka, answered, and waited for until logins reflect it, without the service stack,
PyJWT or the tracing SDK (tests/unit/cli/test_cli_start_up.py checks the same short of a
broker; docs/performance.md says what each cost)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.cli_imports import heavy_modules
from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e


_PROBE = """
import atexit, json, runpy, sys
sys.argv = ["portal-mfa", *{argv!r}]
def report():
    print("LOADED=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
atexit.register(report)
runpy.run_module("portal_mfa", run_name="__main__")
"""


def test_a_policy_change_loads_only_what_it_uses(stack: RunningStack) -> None:
    org = f"lean-{uuid.uuid4().hex[:8]}"
    argv = ["admin", "--org", org, "mfa", "enable", "--json"]
    # Nothing exports spans here (as on an admin's machine): the e2e stack's trace dir is
    # what would make the CLI load the tracing SDK, and rightly.
    env = {k: v for k, v in stack.cli_env().items() if k != "PORTAL_MFA_TRACE_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"org_id": org, "mfa_enabled": True}
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    loaded = json.loads(line.removeprefix("LOADED="))
    assert "aiokafka" in loaded  # it did talk to the broker
    heavy = heavy_modules(loaded)
    assert heavy == [], f"loaded by `portal-mfa {' '.join(argv)}`: {heavy}"
    # And the change is there: the policy reads back as enabled.
    status = stack.cli_json("admin", "--org", org, "mfa", "status")
    assert status["mfa_enabled"] is True

"""`PORTAL_MFA_TEST_INFRA`: the switch between the embedded broker and PostgreSQL and
containers. Where no Docker engine answers, the tiers that need one are skipped with the
reason on one line, not failed, and not quietly run on the embedded servers instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# One file of each tier: nothing in them may run without the infrastructure.
INTEGRATION = "tests/integration/test_topic_retention.py"
E2E = "tests/e2e/test_dev_stack.py"
UNIT = "tests/unit/test_dev_keys.py"


def pytest_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_docker_engine_the_infra_tiers_are_skipped_with_the_reason() -> None:
    # A Docker socket that does not exist: no engine, whatever this machine has.
    done = pytest_run(
        INTEGRATION, E2E, PORTAL_MFA_TEST_INFRA="containers", DOCKER_HOST="unix:///nonexistent.sock"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary and "failed" not in summary, summary
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons
    for line in reasons:
        assert "PORTAL_MFA_TEST_INFRA=containers: no Docker engine answers" in line


def test_the_unit_tier_needs_no_engine() -> None:
    done = pytest_run(
        UNIT, PORTAL_MFA_TEST_INFRA="containers", DOCKER_HOST="unix:///nonexistent.sock"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" not in done.stdout.strip().splitlines()[-1]


def test_an_unknown_mode_is_refused() -> None:
    done = pytest_run(UNIT, PORTAL_MFA_TEST_INFRA="docker")
    assert done.returncode != 0
    assert "PORTAL_MFA_TEST_INFRA must be one of embedded, containers" in done.stderr

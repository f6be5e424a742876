"""The CLI as a user runs it beside a dev stack on other ports than the defaults, with no
`PORTAL_MFA_*` variable set: it finds the stack from its dev state, and when nothing
answers it says which variable to set. Each exit status means one thing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_mfa.cli.exit_codes import BAD_INPUT, BAD_SETTING, REJECTED, UNREACHABLE
from portal_mfa.dev_process import free_port
from tests.dev_stack import RunningStack, stack_running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    # Its own temp dir, so dev stacks that other test runs on this machine leave in the
    # shared one are not among those the CLI finds. Short: PostgreSQL's socket lives in it.
    path = Path(tempfile.mkdtemp(prefix="pmfa-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def own_stack(state_dir: Path) -> Iterator[RunningStack]:
    with stack_running({"TMPDIR": str(state_dir), "PORTAL_MFA_DEV_SEED": "0"}) as running:
        yield running


def bare_cli(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`portal-mfa ARGS` with no PORTAL_MFA_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    return subprocess.run(
        [sys.executable, "-m", "portal_mfa", *args],
        env=clean | {"TMPDIR": str(state_dir), "COLUMNS": "200"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_finds_a_dev_stack_on_other_ports(own_stack: RunningStack, state_dir: Path) -> None:
    assert own_stack.kafka != "127.0.0.1:9092"
    org = f"found-{uuid.uuid4().hex[:8]}"
    enabled = bare_cli(state_dir, "admin", "--org", org, "mfa", "enable", "--json")
    assert enabled.returncode == 0, enabled.stderr
    # The read goes over HTTP to preferences, on the port the stack recorded.
    status = bare_cli(state_dir, "admin", "--org", org, "mfa", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"mfa_enabled": true' in status.stdout


def test_a_rejected_command_exits_1(own_stack: RunningStack, state_dir: Path) -> None:
    unknown = str(uuid.uuid4())
    done = bare_cli(state_dir, "admin", "--org", "acme", "contacts", "reset-mfa", unknown)
    assert done.returncode == REJECTED, done.stderr
    assert done.stderr.startswith("rejected")


def test_bad_input_exits_2_and_sends_nothing(own_stack: RunningStack, state_dir: Path) -> None:
    org = f"bad-{uuid.uuid4().hex[:8]}"
    done = bare_cli(
        state_dir, "admin", "--org", org, "contacts", "add",
        "--kind", "vendor", "--name", "V", "--email", "not-an-email",
    )  # fmt: skip
    assert done.returncode == BAD_INPUT, done.stderr
    listed = bare_cli(state_dir, "admin", "--org", org, "contacts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "not-an-email" not in listed.stdout


def test_a_bad_setting_exits_5_and_names_it_not_its_value(state_dir: Path) -> None:
    secret_looking = "kafka.internal-9092-s3cr3t"
    done = bare_cli(
        state_dir, "admin", "--org", "acme", "mfa", "enable",
        PORTAL_MFA_KAFKA_BOOTSTRAP=secret_looking,
    )  # fmt: skip
    assert done.returncode == BAD_SETTING
    assert "PORTAL_MFA_KAFKA_BOOTSTRAP" in done.stderr
    assert secret_looking not in done.stderr


def test_with_nothing_running_it_says_what_to_set(tmp_path: Path) -> None:
    # A dev state of its own that names no running stack: a stale one from a killed run.
    stale = tmp_path / f"portal-mfa-{os.getuid()}"
    stale.mkdir(mode=0o700)
    dead = f"127.0.0.1:{free_port()}"
    (stale / "dev-dead.json").write_text(f'{{"kafka_bootstrap": "{dead}", "ports": {{}}}}')
    (stale / "dev-dead.json").chmod(0o600)
    done = bare_cli(tmp_path, "admin", "--org", "acme", "mfa", "enable")
    assert done.returncode == UNREACHABLE, done.stderr
    assert "PORTAL_MFA_KAFKA_BOOTSTRAP" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_broker_that_does_not_answer_exits_3(tmp_path: Path) -> None:
    done = bare_cli(
        tmp_path, "admin", "--org", "acme", "mfa", "enable",
        PORTAL_MFA_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}", PORTAL_MFA_ADMIN_TOKEN="x.y.z",
    )  # fmt: skip
    assert done.returncode == UNREACHABLE, done.stderr
    assert "cannot talk to Kafka" in done.stderr
    assert "PORTAL_MFA_KAFKA_BOOTSTRAP" in done.stderr


def probe(*path: str, **ports: int) -> int:
    """`python -m portal_mfa.probe`, as a container's health check runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    # Every service's port is dead unless given: a container runs one service.
    env |= {
        f"PORTAL_MFA_{s.upper()}_PORT": str(free_port())
        for s in ("auth", "preferences", "contacts", "audit")
    }
    env |= {f"PORTAL_MFA_{s.upper()}_PORT": str(port) for s, port in ports.items()}
    done = subprocess.run(
        [sys.executable, "-m", "portal_mfa.probe", *path], env=env, timeout=30, check=False
    )
    return done.returncode


def test_the_health_probe_finds_the_one_service_of_its_container(own_stack: RunningStack) -> None:
    assert probe("/healthz", contacts=own_stack.ports["contacts"]) == 0
    assert probe("/readyz", audit=own_stack.ports["audit"]) == 0
    assert probe("/healthz") == 1  # nothing answers

"""Issue: an admin turns the org's MFA policy on, and the auth service's projection knows it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from urllib.parse import unquote

import httpx
import psutil
import pytest

from portal_mfa import dev_state
from tests.dev_stack import RunningStack, start_stack

pytestmark = pytest.mark.e2e


def wait_for_requirement(
    stack: RunningStack, org: str, contact: str, policy_enabled: bool, within_s: float
) -> dict[str, object]:
    deadline = time.monotonic() + within_s
    while True:
        answer = httpx.get(
            stack.url("auth", f"/v1/orgs/{org}/contacts/{contact}/login-requirement"),
            headers=stack.bearer(org, "audit"),
        ).json()
        if answer["policy_enabled"] is policy_enabled or time.monotonic() > deadline:
            return answer  # type: ignore[no-any-return]
        time.sleep(0.02)


def test_enabling_the_policy_reaches_the_auth_projection_within_a_second(
    stack: RunningStack,
) -> None:
    org = f"acme-{uuid.uuid4().hex[:8]}"
    assert stack.cli_json("admin", "--org", org, "mfa", "status") == {
        "org_id": org,
        "mfa_enabled": False,
        "portal_name": org,
    }
    enabled = stack.cli_json("admin", "--org", org, "mfa", "enable")
    assert enabled["org_id"] == org
    assert enabled["mfa_enabled"] is True

    answer = wait_for_requirement(stack, org, "any-contact", True, within_s=1.0)
    assert answer["policy_enabled"] is True
    assert answer["known"] is False
    assert answer["requirement"] == "enroll"
    assert len(answer["decided_by"]) == 1  # type: ignore[arg-type]

    # Enabling again changes nothing and answers with the current state.
    assert stack.cli_json("admin", "--org", org, "mfa", "enable")["mfa_enabled"] is True
    disabled = stack.cli_json("admin", "--org", org, "mfa", "disable")
    assert disabled["mfa_enabled"] is False
    answer = wait_for_requirement(stack, org, "any-contact", False, within_s=1.0)
    assert answer["requirement"] == "password"

    # Another org is untouched.
    other = httpx.get(
        stack.url("auth", "/v1/orgs/other-org/contacts/x/login-requirement"),
        headers=stack.bearer("other-org"),
    )
    assert other.json()["policy_enabled"] is False


def test_the_cli_says_why_when_no_service_answers(stack: RunningStack) -> None:
    done = stack.cli("admin", "--org", "acme", "mfa", "status", check=False)
    assert done.returncode == 0
    token = stack.cli_json("admin", "--org", "acme", "token")["token"]

    def broken(env: dict[str, str], *args: str) -> str:
        answer = subprocess.run(
            [sys.executable, "-m", "portal_mfa", "admin", "--org", "acme", *args],
            env=stack.cli_env() | env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answer.returncode != 0
        assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr
        return answer.stderr

    # No broker there, and so no dev stack to mint with: the token says who the admin is.
    no_kafka = {"PORTAL_MFA_KAFKA_BOOTSTRAP": "127.0.0.1:9", "PORTAL_MFA_ADMIN_TOKEN": token}
    assert "cannot talk to Kafka" in broken(no_kafka, "mfa", "enable")
    assert "cannot reach the preferences service" in broken(
        {"PORTAL_MFA_PREFERENCES_PORT": "9"}, "mfa", "status"
    )
    # Neither a dev stack nor a token: the CLI cannot prove who the admin is, and says so.
    assert "PORTAL_MFA_ADMIN_TOKEN" in broken(
        {"PORTAL_MFA_KAFKA_BOOTSTRAP": "127.0.0.1:9"}, "mfa", "enable"
    )


def test_readiness_reports_the_projection_lag(stack: RunningStack) -> None:
    ready = httpx.get(stack.url("auth", "/readyz"))
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["projection_lag"]
    assert set(body["projection_lag"].values()) == {0}
    for service in ("preferences", "contacts"):
        assert httpx.get(stack.url(service, "/healthz")).status_code == 200
    assert "portal_mfa" in httpx.get(stack.url("preferences", "/metrics")).text


def test_sigterm_leaves_no_process_behind() -> None:
    own = start_stack({"PORTAL_MFA_DEV_SEED": "0"})
    children = own.descendants()
    assert len(children) >= 4  # broker and three services
    # This stack's server, not one of another stack running beside the tests: its data dir
    # is in the database URL the stack left in its state file.
    state = dev_state.read(own.kafka)
    assert state is not None
    data_dir = re.search(r"(/[^?&]*portal-mfa-pg-[^/?&]+)", unquote(state["database_url"]))
    assert data_dir is not None, state["database_url"]
    postgres = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres"
        and any(data_dir.group(1) in part for part in p.info["cmdline"] or [])
    ]
    assert postgres, "the embedded PostgreSQL should be running"
    assert own.stop() == 0
    time.sleep(0.5)
    alive = [p for p in children + postgres if p.is_running() and p.status() != "zombie"]
    assert alive == []


def test_sigkill_leaves_no_process_behind() -> None:
    # SIGKILL: the dev process runs no cleanup. Its services end with it (they are told
    # by the kernel), the broker and PostgreSQL by their lifelines.
    own = start_stack({"PORTAL_MFA_DEV_SEED": "0"})
    state = dev_state.read(own.kafka)
    assert state is not None
    data_dir = re.search(r"(/[^?&]*portal-mfa-pg-[^/?&]+)", unquote(state["database_url"]))
    assert data_dir is not None, state["database_url"]
    postgres = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres"
        and any(data_dir.group(1) in part for part in p.info["cmdline"] or [])
    ]
    assert postgres, "the embedded PostgreSQL should be running"
    processes = own.descendants() + postgres
    assert len(processes) >= 8  # broker, 4 services, 2 frontends, postmaster
    names = {p.pid: " ".join(p.cmdline()[:4]) for p in processes}

    own.process.kill()
    own.process.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p.pid for p in processes if p.is_running() and p.status() != "zombie"]
        if not alive:
            break
        time.sleep(0.1)
    assert [names[pid] for pid in alive] == []


def test_projection_rebuild_from_the_cli_keeps_the_answers(stack: RunningStack) -> None:
    org = f"rebuild-{uuid.uuid4().hex[:8]}"
    stack.cli_json("admin", "--org", org, "mfa", "enable")
    contact = stack.cli_json(
        "admin", "--org", org, "contacts", "add", "--kind", "vendor", "--name", "R",
        "--email", f"{org}@example.com",
    )["contact_id"]  # fmt: skip
    stack.cli_json("admin", "--org", org, "contacts", "reset-mfa", contact)
    path = f"/v1/orgs/{org}/contacts/{contact}/login-requirement"

    def requirement() -> dict[str, object]:
        answer: dict[str, object] = httpx.get(
            stack.url("auth", path), headers=stack.bearer(org)
        ).json()
        return answer

    deadline = time.monotonic() + 10
    while (before := requirement())["mfa_epoch"] != 1:
        assert time.monotonic() < deadline, before
        time.sleep(0.05)

    rebuilt = stack.cli("projection", "rebuild")
    assert "swapped in" in rebuilt.stdout
    assert requirement() == before
    assert httpx.get(stack.url("auth", "/readyz")).status_code == 200

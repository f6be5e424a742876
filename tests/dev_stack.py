"""The running system, started as a user starts it: `portal-mfa dev` in a subprocess (for
the e2e, browser and faults tiers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from portal_mfa import dev_state
from portal_mfa.dev_process import DevProcess
from shared.admin_identity import AssertionIssuer, Scope


@dataclass
class RunningStack(DevProcess):
    """The dev stack, plus the admin CLI as a user runs it against it."""

    # Where every process of the stack, and the CLI, writes its finished spans.
    trace_dir: str = ""

    def cli_env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            PORTAL_MFA_TRACE_DIR=self.trace_dir,
            PORTAL_MFA_KAFKA_BOOTSTRAP=self.kafka,
            PORTAL_MFA_AUDIT_PORT=str(self.ports["audit"]),
            PORTAL_MFA_AUTH_PORT=str(self.ports["auth"]),
            PORTAL_MFA_PREFERENCES_PORT=str(self.ports["preferences"]),
            PORTAL_MFA_CONTACTS_PORT=str(self.ports["contacts"]),
            PORTAL_MFA_ADMIN="e2e-admin",
        )
        # The CLI proves who the admin is with the dev stack's issuer, as on a dev machine.
        env.pop("PORTAL_MFA_ADMIN_TOKEN", None)
        return env

    def stop(self) -> int:
        code = super().stop()
        if self.trace_dir:
            shutil.rmtree(self.trace_dir, ignore_errors=True)
        return code

    def spans(self) -> list[dict[str, Any]]:
        """Every span the stack and its CLI runs have finished so far."""
        found = []
        for path in sorted(Path(self.trace_dir).glob("*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    found.append(json.loads(line))
        return found

    def log_lines(self) -> list[dict[str, Any]]:
        """The services' JSON log lines so far (the dev stack's own lines are text)."""
        lines = []
        for line in list(self.output):
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def issuer(self) -> AssertionIssuer:
        """The dev stack's admin issuer, found where the CLI on this machine finds it."""
        found = dev_state.issuer(self.kafka)
        assert found is not None, "the dev stack left no admin issuer in its state"
        return found

    def bearer(self, org: str, scope: Scope = "admin", sub: str = "e2e-admin") -> dict[str, str]:
        """An `Authorization` header with a fresh assertion for the org's HTTP reads."""
        token = self.issuer().mint(sub=sub, org=org, scope=scope).token
        return {"Authorization": f"Bearer {token}"}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "portal_mfa", *args],
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"portal-mfa {' '.join(args)} failed: {done.stderr}")
        return done

    def cli_with(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI with extra environment (not checked: the caller looks at the outcome)."""
        return subprocess.run(
            [sys.executable, "-m", "portal_mfa", *args],
            env=self.cli_env() | env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def service_process(self, service: str) -> psutil.Process:
        """The running `portal-mfa serve SERVICE` process of this stack."""
        for process in self.descendants():
            try:
                if process.cmdline()[-2:] == ["serve", service]:
                    return process
            except psutil.NoSuchProcess:
                continue
        raise AssertionError(f"no running {service} process under the dev stack")

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


def start_stack(extra_env: dict[str, str] | None = None) -> RunningStack:
    """The stack as production logs (JSON lines) and with its spans written to files, so the
    tests read the logs operators read and follow traces (docs/observability.md)."""
    trace_dir = tempfile.mkdtemp(prefix="portal-mfa-traces-")
    observed = {"PORTAL_MFA_LOG_FORMAT": "json", "PORTAL_MFA_TRACE_DIR": trace_dir}
    running = RunningStack.start(observed | (extra_env or {}))
    running.trace_dir = trace_dir
    return running


@contextmanager
def stack_running(extra_env: dict[str, str] | None = None) -> Iterator[RunningStack]:
    """A stack of its own for the block (start_stack), stopped with SIGTERM at its end."""
    running = start_stack(extra_env)
    try:
        yield running
    finally:
        running.stop()

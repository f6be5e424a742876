"""The running system, started as a user starts it: `portal-mfa dev` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from portal_mfa.dev_process import DevProcess


@dataclass
class RunningStack(DevProcess):
    """The dev stack, plus the admin CLI as a user runs it against it."""

    def cli_env(self) -> dict[str, str]:
        return dict(
            os.environ,
            PORTAL_MFA_KAFKA_BOOTSTRAP=self.kafka,
            PORTAL_MFA_AUDIT_PORT=str(self.ports["audit"]),
            PORTAL_MFA_ADMIN="e2e-admin",
        )

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

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


def start_stack(extra_env: dict[str, str] | None = None) -> RunningStack:
    return RunningStack.start(extra_env)


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """One dev stack for the e2e session, stopped with SIGTERM at the end."""
    running = start_stack()
    try:
        yield running
    finally:
        running.stop()

"""The running system, started as a user starts it: `portal-mfa dev` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

READY_LINE = "Ready. Press Ctrl-C"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    @property
    def kafka(self) -> str:
        return os.environ.get("PORTAL_MFA_KAFKA_BOOTSTRAP") or f"127.0.0.1:{self.ports['kafka']}"

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

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

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start_stack(extra_env: dict[str, str] | None = None) -> RunningStack:
    ports = {name: _free_port() for name in ("kafka", "auth", "preferences", "contacts", "audit")}
    env = dict(
        os.environ,
        PORTAL_MFA_DEV_KAFKA_PORT=str(ports["kafka"]),
        PORTAL_MFA_AUTH_PORT=str(ports["auth"]),
        PORTAL_MFA_PREFERENCES_PORT=str(ports["preferences"]),
        PORTAL_MFA_CONTACTS_PORT=str(ports["contacts"]),
        PORTAL_MFA_AUDIT_PORT=str(ports["audit"]),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
        **(extra_env or {}),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "portal_mfa", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = RunningStack(process, ports)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line)
            if READY_LINE in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 120
    while not ready.wait(0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise AssertionError("portal-mfa dev did not become ready:\n" + "".join(stack.output))
    return stack


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    """One dev stack for the e2e session, stopped with SIGTERM at the end."""
    running = start_stack()
    try:
        yield running
    finally:
        running.stop()

"""`portal-mfa dev` started as a user starts it, in a subprocess on free loopback ports.

The end-to-end tests and the HTTP benchmarks drive the system through this, so both see
exactly what a user runs.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Self

import psutil

READY_LINE = "Ready. Press Ctrl-C"
PORTS = ("kafka", "auth", "preferences", "contacts", "audit", "portal_web", "console_web")


# Below the kernel's ephemeral range (32768+): a port picked there can be taken a moment
# later by any outgoing connection on the machine, and a stack started on it then fails.
_LISTEN_PORTS = range(20000, 32768)


def free_port() -> int:
    """A loopback TCP port below the ephemeral range that was free a moment ago."""
    for _ in range(200):
        port = random.choice(_LISTEN_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below 32768")


@dataclass
class DevProcess:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    kafka: str  # the broker it uses: its own embedded one, or PORTAL_MFA_KAFKA_BOOTSTRAP's
    output: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    @classmethod
    def start(
        cls,
        extra_env: dict[str, str] | None = None,
        *,
        inherit_settings: bool = True,
        ready_within_s: float = 120.0,
    ) -> Self:
        """Start and wait for its `Ready.` line; `inherit_settings=False` drops PORTAL_MFA_*."""
        ports = {name: free_port() for name in PORTS}
        env = {
            k: v
            for k, v in os.environ.items()
            if inherit_settings or not k.startswith("PORTAL_MFA_")
        }
        env.update(
            PORTAL_MFA_DEV_KAFKA_PORT=str(ports["kafka"]),
            PORTAL_MFA_AUTH_PORT=str(ports["auth"]),
            PORTAL_MFA_PREFERENCES_PORT=str(ports["preferences"]),
            PORTAL_MFA_CONTACTS_PORT=str(ports["contacts"]),
            PORTAL_MFA_AUDIT_PORT=str(ports["audit"]),
            PORTAL_MFA_PORTAL_WEB_PORT=str(ports["portal_web"]),
            PORTAL_MFA_CONSOLE_WEB_PORT=str(ports["console_web"]),
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
        kafka = env.get("PORTAL_MFA_KAFKA_BOOTSTRAP") or f"127.0.0.1:{ports['kafka']}"
        stack = cls(process, ports, kafka)
        ready = threading.Event()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                stack.output.append(line)
                if READY_LINE in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + ready_within_s
        while not ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                stack.stop()
                raise RuntimeError("portal-mfa dev did not become ready:\n" + "".join(stack.output))
        return stack

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def descendants(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; killed if it does not stop within a minute."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

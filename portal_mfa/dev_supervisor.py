"""What `portal-mfa dev` does while it runs: keeps the services up and says what is wrong.

A service that dies is started again after a back-off that grows while it keeps dying;
the broker and PostgreSQL are not restarted (the broker keeps its log in memory, so a
new one would contradict every database), but losing either is reported at once. Each
service's readiness is watched too, and every change is one line, never one per poll.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

Say = Callable[[str], None]

FIRST_RESTART_S = 0.5
MAX_RESTART_S = 30.0
# A service that stayed up this long counts as healthy again: its next crash restarts fast.
STABLE_AFTER_S = 60.0


@dataclass
class RestartSchedule:
    """Capped exponential back-off with jitter, reset once the service has been stable."""

    delay_s: float = FIRST_RESTART_S
    started_at: float = field(default_factory=time.monotonic)

    def next_delay(self, now: float) -> float:
        if now - self.started_at >= STABLE_AFTER_S:
            self.delay_s = FIRST_RESTART_S
        delay = self.delay_s * random.uniform(0.8, 1.2)
        self.delay_s = min(self.delay_s * 2, MAX_RESTART_S)
        return delay


@dataclass
class Watched:
    name: str
    spawn: Callable[[], subprocess.Popen[bytes]]
    readyz: str
    process: subprocess.Popen[bytes]
    schedule: RestartSchedule = field(default_factory=RestartSchedule)
    restart_at: float | None = None
    restarts: int = 0
    state: str = "ready"


class Supervisor:
    def __init__(
        self,
        services: list[Watched],
        *,
        say: Say,
        broker: subprocess.Popen[bytes] | None = None,
        postgres_pid: int | None = None,
    ) -> None:
        self.services = services
        self._say = say
        self._broker = broker
        self._postgres_pid = postgres_pid
        self._infra_state: dict[str, str] = {}

    def check(self, now: float | None = None) -> None:
        """One pass: restart what is due, report what changed."""
        now = time.monotonic() if now is None else now
        self._check_infrastructure()
        for service in self.services:
            self._check_service(service, now)

    def _check_infrastructure(self) -> None:
        if self._broker is not None:
            code = self._broker.poll()
            self._report("broker", "up" if code is None else f"DOWN (exit status {code})")
        if self._postgres_pid is not None:
            alive = _running(self._postgres_pid)
            self._report("postgres", "up" if alive else "DOWN (the server process is gone)")

    def _report(self, part: str, state: str) -> None:
        before = self._infra_state.get(part, "up")
        self._infra_state[part] = state
        if state != before:
            if state == "up":
                self._say(f"{part} is back")
            else:
                self._say(
                    f"[red]{part} is {state}[/red]: services fail closed (503) until it is"
                    " back; restart `portal-mfa dev` to start fresh"
                )

    def _check_service(self, service: Watched, now: float) -> None:
        if service.restart_at is not None:
            if now >= service.restart_at:
                service.process = service.spawn()
                service.restart_at = None
                service.restarts += 1
                service.schedule.started_at = now
                self._say(f"{service.name}: restarted (restart {service.restarts})")
            return
        code = service.process.poll()
        if code is not None:
            delay = service.schedule.next_delay(now)
            service.restart_at = now + delay
            service.state = "down"
            self._say(
                f"[red]{service.name} exited with status {code}[/red]; restarting in {delay:.1f}s"
            )
            return
        state = _readiness(service.readyz)
        if state != service.state:
            service.state = state
            self._say(f"{service.name}: {state}")


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _readiness(url: str) -> str:
    """'ready', or 'not ready' with the reason the service gives in its /readyz body."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback URL)
            return "ready" if answer.status == 200 else "not ready"
    except urllib.error.HTTPError as refused:
        reason = ""
        with contextlib.suppress(ValueError, OSError):
            body = json.loads(refused.read() or b"{}")
            reason = str(body.get("reason") or body.get("reasons") or "")
        return f"not ready ({reason})" if reason else "not ready"
    except OSError:
        return "not answering"

"""`portal-mfa dev`: the whole system on this machine, fresh at every start.

The broker (Tansu, memory-backed) and PostgreSQL (embedded) are started here unless
`PORTAL_MFA_KAFKA_BOOTSTRAP` / `PORTAL_MFA_DATABASE_URL` point at real ones; each
service runs as its own process, as it would in production.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import functools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

from rich.console import Console
from rich.text import Text

from portal_mfa import dev_state
from portal_mfa.dev_keys import DevSigningKeys
from portal_mfa.dev_supervisor import Supervisor, Watched
from portal_mfa.infra.broker import BrokerStartFailed, EmbeddedBroker, PortTaken, ensure_port_free
from portal_mfa.infra.postgres import EmbeddedPostgres
from portal_mfa.serve import SERVICES, port_of, prepare
from shared.admin_identity import AssertionIssuer
from shared.settings import Settings

console = Console()
PORT_VARS = {
    "auth": "PORTAL_MFA_AUTH_PORT",
    "preferences": "PORTAL_MFA_PREFERENCES_PORT",
    "contacts": "PORTAL_MFA_CONTACTS_PORT",
    "audit": "PORTAL_MFA_AUDIT_PORT",
}
# The web frontends (frontends/): each a module run as its own supervised process, on
# its own port, started once the services they call are ready.
FRONTENDS = {
    "portal-web": ("frontends.portal_web", "portal_web_port", "PORTAL_MFA_PORTAL_WEB_PORT"),
    "console-web": ("frontends.admin_web", "console_web_port", "PORTAL_MFA_CONSOLE_WEB_PORT"),
}


def frontend_port(settings: Settings, frontend: str) -> int:
    port: int = getattr(settings, FRONTENDS[frontend][1])
    return port


def _port(settings: Settings, name: str) -> int:
    return frontend_port(settings, name) if name in FRONTENDS else port_of(settings, name)


class DevStackFailed(RuntimeError):
    pass


@dataclass
class DevStack:
    settings: Settings
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    keys: DevSigningKeys = field(default_factory=DevSigningKeys.generate)

    # A fresh admin issuer per start: the services trust its public key, and the CLI on
    # this machine finds its private key in the dev state (DESIGN.md §11).
    admin_issuer: AssertionIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.admin_issuer = AssertionIssuer.generate(
            key_id=f"dev-{secrets.token_hex(4)}",
            issuer=self.settings.admin_issuer or "portal-mfa-dev",
        )

    def start(self) -> None:
        for service in SERVICES:
            ensure_port_free(port_of(self.settings, service), PORT_VARS[service])
        for frontend, (_, _, port_var) in FRONTENDS.items():
            ensure_port_free(frontend_port(self.settings, frontend), port_var)
        env = dict(os.environ, PORTAL_MFA_PROFILE="dev")
        if "PORTAL_MFA_KAFKA_BOOTSTRAP" not in os.environ:
            if self.settings.kafka_security_protocol != "PLAINTEXT":
                # Measured: Tansu 0.6 cannot hold SCRAM users nor serve TLS (docs/security.md).
                raise DevStackFailed(
                    "the embedded dev broker speaks PLAINTEXT only: unset "
                    "PORTAL_MFA_KAFKA_SECURITY_PROTOCOL, or point PORTAL_MFA_KAFKA_BOOTSTRAP "
                    "at a Kafka that authenticates"
                )
            self.broker = asyncio.run(
                EmbeddedBroker.start(
                    self.settings.dev_kafka_port, port_env_var="PORTAL_MFA_DEV_KAFKA_PORT"
                )
            )
            # The memory-backed dev broker refuses the idempotent producer (DESIGN.md §7),
            # and holds every fetch for its whole wait even when records are there.
            env.update(
                PORTAL_MFA_KAFKA_BOOTSTRAP=self.broker.bootstrap,
                PORTAL_MFA_KAFKA_IDEMPOTENCE="false",
            )
            env.setdefault("PORTAL_MFA_KAFKA_FETCH_MAX_WAIT_MS", "20")
        if "PORTAL_MFA_DATABASE_URL" not in os.environ:
            self.postgres = asyncio.run(EmbeddedPostgres.start())
            env["PORTAL_MFA_DATABASE_URL"] = self.postgres.url("postgres")
        if not self.settings.secret_keys:
            key = base64.b64encode(os.urandom(32)).decode()
            # A fresh key per start: the dev stack's data does not outlive it anyway.
            env["PORTAL_MFA_SECRET_KEYS"] = f"dev:{key}"
            env["PORTAL_MFA_SECRET_KEY_ID"] = "dev"  # noqa: S105 (a key's name, not a key)
        trusted = [self.settings.admin_issuer_keys, self.admin_issuer.trusted_key_entry]
        env["PORTAL_MFA_ADMIN_ISSUER_KEYS"] = ",".join(filter(None, trusted))
        env["PORTAL_MFA_ADMIN_ISSUER"] = self.admin_issuer.issuer
        if not self.settings.web_cookie_key.get_secret_value():
            # One key for this start, so a restarted frontend still opens its cookies.
            env["PORTAL_MFA_WEB_COOKIE_KEY"] = base64.b64encode(os.urandom(32)).decode()
        if self.broker is not None:
            self.settings = self.settings.model_copy(
                update={"kafka_bootstrap": self.broker.bootstrap, "kafka_idempotence": False}
            )
        if self.postgres is not None:
            self.settings = self.settings.model_copy(
                update={"database_url": env["PORTAL_MFA_DATABASE_URL"]}
            )
        for service in SERVICES:
            asyncio.run(prepare(self.settings, service))
        # Each child gets only its own private key (spawn), and everyone the trust map.
        dev_state.write(
            self.settings.database_url,
            self.settings.kafka_bootstrap,
            self.admin_issuer,
            self.keys.trusted_signers(),
            {service: port_of(self.settings, service) for service in SERVICES},
        )
        self.env = env
        for service in SERVICES:
            self.children[service] = self.spawn(service)
        for service in SERVICES:
            self._wait_ready(service)
        for frontend in FRONTENDS:
            self.children[frontend] = self.spawn(frontend)
        for frontend in FRONTENDS:
            self._wait_ready(frontend)

    def spawn(self, service: str) -> subprocess.Popen[bytes]:
        command = (
            ["-m", FRONTENDS[service][0]]
            if service in FRONTENDS
            else ["-m", "portal_mfa", "serve", service]
        )
        return subprocess.Popen(
            [sys.executable, *command],
            env=self.env | self.keys.env_for(service),
            # Own session: Ctrl-C reaches only this supervisor, which stops children in order.
            start_new_session=True,
            preexec_fn=_end_with_parent(),
        )

    def supervisor(self) -> Supervisor:
        watched = [
            Watched(
                name=service,
                spawn=functools.partial(self.spawn, service),
                readyz=f"http://127.0.0.1:{_port(self.settings, service)}/readyz",
                process=child,
            )
            for service, child in self.children.items()
        ]
        return Supervisor(
            watched,
            say=lambda line: console.print(line, highlight=False, markup=False),
            broker=self.broker.process if self.broker is not None else None,
            postgres_pid=self.postgres.pid if self.postgres is not None else None,
        )

    def _wait_ready(self, service: str, within_s: float = 60.0) -> None:
        url = f"http://127.0.0.1:{_port(self.settings, service)}/readyz"
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            child = self.children[service]
            if child.poll() is not None:
                raise DevStackFailed(f"{service} exited with status {child.returncode}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise DevStackFailed(f"{service} was not ready within {within_s:g}s ({url})")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        dev_state.remove(self.settings.kafka_bootstrap)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def addresses(self) -> Iterator[tuple[str, str]]:
        yield "kafka", self.settings.kafka_bootstrap
        for service in SERVICES:
            yield service, f"http://127.0.0.1:{port_of(self.settings, service)}"
        yield "portal", f"http://127.0.0.1:{frontend_port(self.settings, 'portal-web')}"
        yield "console", f"http://127.0.0.1:{frontend_port(self.settings, 'console-web')}"


def _end_with_parent() -> Callable[[], None] | None:
    """In a service child before exec: SIGTERM it when this process dies (Linux).

    A `portal-mfa dev` killed with SIGKILL runs no cleanup, and a service in its own
    session would keep its port. The kernel sends the signal when the *thread* that
    forked the child exits: services are spawned only from the main thread (start, and
    the supervisor's loop), which lives as long as the process. The embedded servers have
    lifelines instead (portal_mfa/infra/lifeline.py), as they may start from any thread.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def arm() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            # It died between the fork and the prctl: no signal will come.
            os._exit(1)

    return arm


_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child must not load libraries between fork and exec.
_prctl: Callable[..., int] | None = (
    ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_dev(settings: Settings) -> int:
    stack = DevStack(settings)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        console.print("[bold]portal-mfa dev[/bold]: starting broker, PostgreSQL and services…")
        stack.start()
        if settings.dev_seed:
            from portal_mfa.seed import seed_demo

            for line in seed_demo(stack.settings, stack.admin_issuer):
                console.print(line, highlight=False, markup=False)
        for name, address in stack.addresses():
            console.print(f"  {name:<12} {address}", highlight=False, markup=False)
        portal = f"http://127.0.0.1:{frontend_port(stack.settings, 'portal-web')}"
        admin = f"http://127.0.0.1:{frontend_port(stack.settings, 'console-web')}"
        console.print(
            f"  portal login {portal}/portals/demo/login\n"
            f"  admin web    {admin}/signin\n"
            f"  portal API   http://127.0.0.1:{stack.settings.auth_port}/docs\n"
            "Ready. Press Ctrl-C to stop everything.",
            highlight=False,
        )
        supervisor = stack.supervisor()
        while True:
            supervisor.check()
            # The restarted processes are the ones stop() must end.
            stack.children.update({w.name: w.process for w in supervisor.services})
            time.sleep(0.5)
    except _Stop:
        console.print("stopping…")
        return 0
    except (DevStackFailed, PortTaken, BrokerStartFailed) as exc:
        # The reason may quote a service's output: printed as it is, never read as markup.
        console.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()

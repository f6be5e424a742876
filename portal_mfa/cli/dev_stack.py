"""Which broker the CLI talks to when `PORTAL_MFA_KAFKA_BOOTSTRAP` is not set.

A `portal-mfa dev` started on other ports (`PORTAL_MFA_DEV_KAFKA_PORT`, ...) leaves its
addresses in this user's private dev state (portal_mfa/dev_state.py); the CLI on the same
machine uses the one stack whose broker answers there, with its service ports. With none,
or several, it keeps the default and, when that does not answer either, says what to set.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass

from portal_mfa import dev_state

BOOTSTRAP_VAR = "PORTAL_MFA_KAFKA_BOOTSTRAP"
# Settings' default, written out: importing pydantic-settings to read it would cost every
# `portal-mfa … --help` ~0.1 s (tests/unit/cli/test_dev_stack.py checks they agree).
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
# Where the CLI reads from each service: a URL set by hand wins over a port from the state.
_SERVICE_VARS = {
    # auth too: the CLI asks it whether logins reflect a change (read-your-writes).
    "auth": ("PORTAL_MFA_AUTH_URL", "PORTAL_MFA_AUTH_PORT"),
    "preferences": ("PORTAL_MFA_PREFERENCES_URL", "PORTAL_MFA_PREFERENCES_PORT"),
    "contacts": ("PORTAL_MFA_CONTACTS_URL", "PORTAL_MFA_CONTACTS_PORT"),
    "audit": ("PORTAL_MFA_AUDIT_URL", "PORTAL_MFA_AUDIT_PORT"),
}


@dataclass(frozen=True)
class RunningDevStack:
    kafka_bootstrap: str
    ports: dict[str, int]


def answers(bootstrap: str, timeout_s: float = 0.5) -> bool:
    """Whether anything accepts a TCP connection at the first address of `bootstrap`."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def running_dev_stacks() -> list[RunningDevStack]:
    """This user's dev stacks whose broker answers (a killed stack leaves its state behind)."""
    found = []
    for state in dev_state.every_state():
        bootstrap = state.get("kafka_bootstrap")
        if isinstance(bootstrap, str) and answers(bootstrap):
            ports = state.get("ports") or {}
            found.append(RunningDevStack(bootstrap, {k: int(v) for k, v in ports.items()}))
    return found


def use_running_dev_stack(env: MutableMapping[str, str] = os.environ) -> RunningDevStack | None:
    """Point this process's settings at the one running dev stack, unless the broker is set.

    The default address wins when a stack runs there (as before); otherwise one stack is
    used only if it is the only one, since picking among several could act on the wrong one.
    """
    if env.get(BOOTSTRAP_VAR):
        return None
    stacks = running_dev_stacks()
    chosen = [s for s in stacks if s.kafka_bootstrap == DEFAULT_BOOTSTRAP] or stacks
    if len(chosen) != 1:
        return None
    stack = chosen[0]
    env[BOOTSTRAP_VAR] = stack.kafka_bootstrap
    for service, (url_var, port_var) in _SERVICE_VARS.items():
        if service in stack.ports and not env.get(url_var) and not env.get(port_var):
            env[port_var] = str(stack.ports[service])
    return stack


def what_to_set(bootstrap: str, env: MutableMapping[str, str] = os.environ) -> str:
    """One sentence for "cannot reach Kafka": which variable to set, and to what."""
    if env.get(BOOTSTRAP_VAR):
        return f"check {BOOTSTRAP_VAR}={bootstrap}"
    stacks = [s.kafka_bootstrap for s in running_dev_stacks()]
    if len(stacks) > 1:
        return f"several dev stacks run here: set {BOOTSTRAP_VAR} to one of {', '.join(stacks)}"
    return (
        f"no running `portal-mfa dev` was found on this machine: start one, or set"
        f" {BOOTSTRAP_VAR}=host:port to your Kafka"
    )

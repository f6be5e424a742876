"""What a command-owning service counts: commands by type and result, and how long each took.

The labels come from a closed set: a command type the service does not know, or a body
that is not a command at all, is counted as `unknown` — a sender cannot mint series.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from shared.contracts import Command, CommandReply

COMMANDS = Counter(
    "portal_mfa_commands",
    "Admin commands handled, by type and result (accepted, rejected with a reason, failed)",
    ["service", "command_type", "result", "reason"],
)
COMMAND_DURATION = Histogram(
    "portal_mfa_command_duration_seconds",
    "Time to handle one admin command, reply included",
    ["service", "command_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _command_types() -> frozenset[str]:
    found: set[str] = set()
    pending: list[type[Command]] = [Command]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        field = cls.model_fields.get("command_type")
        if field is not None and isinstance(field.default, str):
            found.add(field.default)
    return frozenset(found)


KNOWN_COMMAND_TYPES = _command_types()


@dataclass(frozen=True)
class Described:
    """What a command as received says it is, before anything trusts it: labels for
    metrics, spans and log lines only. Admission (shared.command_handling) decides."""

    command_type: str = "unknown"
    org_id: str | None = None
    correlation_id: str | None = None


def described(body: bytes) -> Described:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Described()
    if not isinstance(raw, dict):
        return Described()
    kind, org = raw.get("command_type"), raw.get("org_id")
    return Described(
        command_type=kind if isinstance(kind, str) and kind in KNOWN_COMMAND_TYPES else "unknown",
        # shared.observability.context names an org in a log line only if it is one.
        org_id=org if isinstance(org, str) else None,
        # The id the command's events will carry, so its log lines and events agree; a
        # UUID or nothing, so no sender's free text reaches a log line.
        correlation_id=_uuid(raw.get("correlation_id")),
    )


def _uuid(value: object) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def count(service: str, command_type: str, reply: CommandReply | None, took_s: float) -> None:
    """One handled command; `reply` None when handling failed (it will be redelivered)."""
    if reply is None:
        result, reason = "failed", ""
    elif reply.ok:
        result, reason = "accepted", ""
    else:
        result, reason = "rejected", reply.rejection.code if reply.rejection else ""
    COMMANDS.labels(service, command_type, result, reason).inc()
    COMMAND_DURATION.labels(service, command_type).observe(took_s)

"""Command metrics label only what the service knows: a sender cannot mint series or put
free text into a log line through a command's fields."""

from __future__ import annotations

import json
import uuid

import pytest
from prometheus_client import REGISTRY

from shared.command_metrics import KNOWN_COMMAND_TYPES, count, described
from shared.contracts import CommandReply, EnableMfaPolicy


def test_a_command_is_described_by_its_type_org_and_correlation() -> None:
    command = EnableMfaPolicy(org_id="acme")
    said = described(command.model_dump_json().encode())
    assert said.command_type == "EnableMfaPolicy"
    assert said.org_id == "acme"
    assert said.correlation_id == command.correlation_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps(
            {"command_type": "DropAllTables", "correlation_id": "eyJhbGciOi.e30.x"}
        ).encode(),
        json.dumps({"command_type": ["EnableMfaPolicy"], "correlation_id": 7}).encode(),
    ],
)
def test_anything_else_is_unknown_and_names_no_correlation(body: bytes) -> None:
    said = described(body)
    assert said.command_type == "unknown"
    assert said.correlation_id is None


def test_every_command_the_console_sends_is_known() -> None:
    assert {"EnableMfaPolicy", "CreateContact", "ResetPortalMfa"} <= KNOWN_COMMAND_TYPES


def test_results_are_counted_with_the_rejection_reason() -> None:
    def value(result: str, reason: str) -> float:
        labels = {"service": "unit", "command_type": "CreateContact", "result": result}
        found = REGISTRY.get_sample_value("portal_mfa_commands_total", labels | {"reason": reason})
        return found or 0.0

    before = value("rejected", "not_found"), value("accepted", ""), value("failed", "")
    command_id = uuid.uuid4()
    count("unit", "CreateContact", CommandReply.rejected(command_id, "not_found", "no"), 0.01)
    count("unit", "CreateContact", CommandReply.accepted(command_id, {}), 0.01)
    count("unit", "CreateContact", None, 0.01)
    after = value("rejected", "not_found"), value("accepted", ""), value("failed", "")
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]

"""The event contracts: wire form, validation, upcasting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import contracts as ev
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    EventRejected,
    MfaReset,
    MfaResetPayload,
    parse_event,
)

CAUSE = Cause(actor="system", at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC), correlation_id="c")


def contact_created() -> ContactCreated:
    return ContactCreated.new(
        org_id="acme",
        aggregate_id="c1",
        aggregate_version=1,
        payload=ContactCreatedPayload(kind="customer", display_name="Cy", email="cy@example.com"),
        cause=CAUSE,
    )


def test_wire_form_has_the_envelope_fields_and_round_trips() -> None:
    event = contact_created()
    wire = json.loads(event.to_json())
    assert set(wire) == {
        "event_id", "event_type", "schema_version", "occurred_at", "org_id", "aggregate_type",
        "aggregate_id", "aggregate_version", "correlation_id", "causation_id", "actor", "payload",
    }  # fmt: skip
    assert wire["occurred_at"] == "2026-05-01T12:00:00Z"
    assert wire["aggregate_type"] == "contact"
    assert parse_event(event.to_json()) == event
    assert event.kafka_key() == b"c1"
    assert dict(event.kafka_headers()) == {"event_type": b"ContactCreated", "schema_version": b"1"}
    assert event.topic == ev.CONTACTS_EVENTS


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda w: w.update(event_type="Nope"), "unknown event_type"),
        (lambda w: w.pop("aggregate_version"), "aggregate_version"),
        (lambda w: w.update(schema_version=99), "newer than this reader"),
        (lambda w: w["payload"].update(kind="robot"), "payload.kind"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(mutate: Any, reason: str) -> None:
    wire = json.loads(contact_created().to_json())
    mutate(wire)
    with pytest.raises(EventRejected, match=reason):
        parse_event(json.dumps(wire).encode())


def test_a_rejection_never_echoes_the_offending_value() -> None:
    wire = json.loads(contact_created().to_json())
    wire["payload"]["kind"] = "hunter2-secret-value"
    with pytest.raises(EventRejected) as caught:
        parse_event(json.dumps(wire))
    assert "hunter2" not in str(caught.value)


def test_not_json_is_rejected() -> None:
    with pytest.raises(EventRejected, match="not JSON"):
        parse_event(b"\xff\xfe garbage")


def test_an_old_schema_version_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend MfaReset is now at v2 and v1 lacked `reason`: a v1 event still reads.
    monkeypatch.setattr(MfaReset, "current_schema_version", 2)

    def v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
        return {**raw, "schema_version": 2, "payload": {**raw["payload"], "reason": "(v1)"}}

    monkeypatch.setitem(ev.UPCASTERS, ("MfaReset", 1), v1_to_v2)
    v1 = MfaReset.new(
        org_id="acme",
        aggregate_id="c1",
        aggregate_version=2,
        payload=MfaResetPayload(mfa_epoch=1),
        cause=CAUSE,
    ).model_dump(mode="json")
    v1["schema_version"] = 1
    del v1["payload"]["reason"]
    event = parse_event(json.dumps(v1))
    assert isinstance(event, MfaReset)
    assert (event.schema_version, event.payload.reason, event.payload.mfa_epoch) == (2, "(v1)", 1)


def test_json_schema_covers_every_event_type() -> None:
    schema = json.dumps(ev.event_json_schema())
    for name in ev.EVENT_TYPES:
        assert name in schema

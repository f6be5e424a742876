"""`ContactUnlocked` continues a contact's stream in auth's fold and in audit's: it changes
nothing the login decision reads, but a fold that skipped it would see every later event
of the contact beyond a version gap, and hold it forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactUnlocked,
    ContactUnlockedPayload,
    Empty,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)
from shared.login_rule.history import requirement_from_history
from shared.login_rule.projected import ContactEvent, ProjectedContact

AT = datetime(2026, 1, 1, tzinfo=UTC)
CAUSE = Cause(actor="admin", at=AT)


def stream() -> list[ContactEvent]:
    common: dict[str, Any] = {"org_id": "acme", "aggregate_id": "c1", "cause": CAUSE}
    granted = PortalAccessGrantedPayload(
        email="v@example.com", invitation_hash="0" * 64, expires_at=AT + timedelta(days=1)
    )
    created = ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com")
    return [
        ContactCreated.new(aggregate_version=1, payload=created, **common),
        PortalAccessGranted.new(aggregate_version=2, payload=granted, **common),
        ContactUnlocked.new(
            aggregate_version=3, payload=ContactUnlockedPayload(reason="support"), **common
        ),
        PortalAccessRevoked.new(aggregate_version=4, payload=Empty(), **common),
    ]


def test_the_projection_folds_it_as_one_more_version() -> None:
    contact = ProjectedContact("c1", "acme")
    events = stream()
    for event in events[:3]:
        contact = contact.evolve(event)
    assert (contact.version, contact.portal_access) == (3, True)
    assert contact.evolve(events[3]).portal_access is False


def test_the_history_fold_sees_no_gap_after_it() -> None:
    decided = requirement_from_history("acme", "c1", stream())
    assert decided.held.contact == ()

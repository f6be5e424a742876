"""`ContactUnlocked` continues a contact's stream in auth's fold and in audit's: it changes
nothing the login decision reads, but a fold that skipped it would see every later event
of the contact beyond a version gap, and hold it forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.events import (
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
from shared.login_rule.projected import ProjectedContact

AT = datetime(2026, 1, 1, tzinfo=UTC)
CAUSE = Cause(actor="admin", at=AT)


def stream() -> list[ContactCreated | PortalAccessGranted | ContactUnlocked | PortalAccessRevoked]:
    def new(cls: type, version: int, payload: object) -> object:
        return cls.new(
            org_id="acme",
            aggregate_id="c1",
            aggregate_version=version,
            payload=payload,
            cause=CAUSE,
        )

    return [
        new(
            ContactCreated,
            1,
            ContactCreatedPayload(kind="vendor", display_name="V", email="v@x.io"),
        ),
        new(
            PortalAccessGranted,
            2,
            PortalAccessGrantedPayload(
                email="v@x.io", invitation_hash="0" * 64, expires_at=AT + timedelta(days=1)
            ),
        ),
        new(ContactUnlocked, 3, ContactUnlockedPayload(reason="support")),
        new(PortalAccessRevoked, 4, Empty()),
    ]  # type: ignore[return-value]


def test_the_projection_folds_it_as_one_more_version() -> None:
    contact = ProjectedContact("c1", "acme")
    for event in stream()[:3]:
        contact = contact.evolve(event)
    assert (contact.version, contact.portal_access) == (3, True)
    assert contact.evolve(stream()[3]).portal_access is False


def test_the_history_fold_sees_no_gap_after_it() -> None:
    decided = requirement_from_history("acme", "c1", stream())  # type: ignore[arg-type]
    assert decided.held.contact == ()

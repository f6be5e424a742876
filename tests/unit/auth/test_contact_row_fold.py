"""The contact fold on a row in place (`fold_contact`), as the projection folds a batch:
the same outcome as `ProjectedContact.evolve`, field by field, and the same gapless rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    Empty,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)
from shared.login_rule.gapless import VersionGap
from shared.login_rule.projected import (
    ContactEvent,
    ProjectedContact,
    fold_contact,
    new_contact_row,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)
CAUSE = Cause(actor="admin", at=AT)
EXPIRES = AT + timedelta(days=14)


def event(cls: Any, version: int, payload: Any) -> ContactEvent:
    event: ContactEvent = cls.new(
        org_id="acme", aggregate_id="c1", aggregate_version=version, payload=payload, cause=CAUSE
    )
    return event


def stream() -> list[ContactEvent]:
    return [
        event(
            ContactCreated,
            1,
            ContactCreatedPayload(kind="vendor", display_name="V", email="V@Example.com"),
        ),
        event(
            PortalAccessGranted,
            2,
            PortalAccessGrantedPayload(
                email="V@Example.com", invitation_hash="a" * 64, expires_at=EXPIRES
            ),
        ),
        event(MfaReset, 3, MfaResetPayload(mfa_epoch=4, reason="lost device")),
        # An older epoch arriving later never lowers it.
        event(MfaReset, 4, MfaResetPayload(mfa_epoch=2, reason="again")),
        event(PortalAccessRevoked, 5, Empty()),
        event(ContactDeleted, 6, Empty()),
    ]


def test_a_new_row_is_a_new_contacts_row() -> None:
    assert new_contact_row("c1", "acme") == list(ProjectedContact("c1", "acme").row())


def test_each_event_changes_the_row_as_it_should() -> None:
    events = stream()
    row = new_contact_row("c1", "acme")
    seen: list[ProjectedContact] = []
    for e in events:
        fold_contact(row, e)
        seen.append(ProjectedContact.from_row(row))
    created, granted, reset, older_reset, revoked, deleted = seen
    assert (created.version, created.kind, created.display_name, created.email) == (
        1,
        "vendor",
        "V",
        "v@example.com",
    )
    assert (granted.portal_access, granted.invitation_hash, granted.invitation_expires_at) == (
        True,
        "a" * 64,
        EXPIRES,
    )
    assert (reset.mfa_epoch, reset.reset_event_id) == (4, events[2].event_id)
    assert (older_reset.mfa_epoch, older_reset.reset_event_id) == (4, events[3].event_id)
    assert (revoked.portal_access, revoked.invitation_hash, revoked.deleted) == (False, None, False)
    assert (deleted.version, deleted.deleted, deleted.portal_access) == (6, True, False)


def test_the_row_fold_ends_where_evolve_does() -> None:
    row = new_contact_row("c1", "acme")
    contact = ProjectedContact("c1", "acme")
    for e in stream():
        fold_contact(row, e)
        contact = contact.evolve(e)
        assert tuple(row) == contact.row()


def test_a_duplicate_changes_nothing_and_a_jump_is_refused() -> None:
    events = stream()
    row = new_contact_row("c1", "acme")
    for e in events[:3]:
        fold_contact(row, e)
    before = list(row)
    fold_contact(row, events[1])  # redelivered
    assert row == before
    beyond = event(MfaReset, 9, MfaResetPayload(mfa_epoch=9, reason="forged"))
    with pytest.raises(VersionGap):
        fold_contact(row, beyond)
    assert row == before

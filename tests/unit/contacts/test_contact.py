from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.contacts.domain import Contact, ContactRejected
from shared.contracts import Cause, ContactUnlocked, MfaReset, PortalAccessGranted

CAUSE = Cause(actor="admin-1", at=datetime(2026, 1, 1, tzinfo=UTC))


def created() -> Contact:
    contact = Contact("c1")
    [event] = contact.create("acme", "vendor", "Vera Vendor", "vera@example.com", CAUSE)
    return contact.apply(event)  # type: ignore[arg-type]


def test_create_then_create_again_is_rejected() -> None:
    contact = created()
    assert (contact.org_id, contact.kind, contact.version, contact.exists) == (
        "acme",
        "vendor",
        1,
        True,
    )
    with pytest.raises(ContactRejected):
        contact.create("acme", "vendor", "Vera", "vera@example.com", CAUSE)


def test_every_reset_increments_the_epoch() -> None:
    contact = created()
    for expected in (1, 2, 3):
        [event] = contact.reset_mfa("lost phone", CAUSE)
        assert isinstance(event, MfaReset)
        assert event.payload.mfa_epoch == expected
        contact = contact.apply(event)  # type: ignore[arg-type]
    assert contact.mfa_epoch == 3


def test_grant_carries_only_the_invitation_hash_and_an_expiry() -> None:
    contact = created()
    [event] = contact.grant_portal_access("ab" * 32, timedelta(days=7), CAUSE)
    assert isinstance(event, PortalAccessGranted)
    assert event.payload.invitation_hash == "ab" * 32
    assert event.payload.expires_at == CAUSE.at + timedelta(days=7)
    assert event.payload.email == "vera@example.com"
    contact = contact.apply(event)  # type: ignore[arg-type]
    assert contact.portal_access is True
    [revoked] = contact.revoke_portal_access(CAUSE)
    contact = contact.apply(revoked)  # type: ignore[arg-type]
    assert contact.portal_access is False
    assert contact.revoke_portal_access(CAUSE) == []


def test_a_deleted_contact_no_longer_exists() -> None:
    contact = created()
    [deleted] = contact.delete(CAUSE)
    assert contact.apply(deleted).exists is False  # type: ignore[arg-type]


def test_unlock_records_an_event_for_a_contact_with_portal_access() -> None:
    contact = created()
    with pytest.raises(ContactRejected) as refused:
        contact.unlock("", CAUSE)  # no portal access: nothing to unlock
    assert refused.value.code == "conflict"
    [granted] = contact.grant_portal_access("0" * 64, timedelta(days=1), CAUSE)
    contact = contact.apply(granted)  # type: ignore[arg-type]
    [unlocked] = contact.unlock("called support", CAUSE)
    assert isinstance(unlocked, ContactUnlocked)
    assert unlocked.aggregate_version == contact.version + 1
    assert unlocked.payload.reason == "called support"
    after = contact.apply(unlocked)  # type: ignore[arg-type]
    assert (after.version, after.portal_access) == (contact.version + 1, True)

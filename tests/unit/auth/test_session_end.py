"""When sessions end (no I/O): what each applied event ends, and which live session counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.auth.domain.session_end import (
    ContactTokensEnd,
    PasswordSessionsEnd,
    ended_by,
    session_admitted,
)
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    Empty,
    Event,
    EventEnvelope,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaEnrollmentInvalidated,
    MfaEnrollmentInvalidatedPayload,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    Payload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
    PortalNameSet,
    PortalNameSetPayload,
)
from shared.login_rule.history import requirement_from_history
from shared.login_rule.projected import ProjectedContact

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CAUSE = Cause(actor="admin", at=T0)


def event(cls: type[EventEnvelope], aggregate: str, version: int, payload: Payload) -> Event:
    made: Event = cls.new(  # type: ignore[assignment]
        org_id="acme",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        cause=CAUSE,
    )
    return made


def granted(version: int) -> Event:
    payload = PortalAccessGrantedPayload(
        email="c1@example.com", invitation_hash="ab" * 32, expires_at=T0
    )
    return event(PortalAccessGranted, "c1", version, payload)


def test_a_reset_ends_every_token_of_the_contact_and_shreds_older_enrollments() -> None:
    reset = event(MfaReset, "c1", 3, MfaResetPayload(mfa_epoch=2, reason="lost phone"))
    assert ended_by(reset) == ContactTokensEnd("c1", "acme", shred_below_epoch=2)


@pytest.mark.parametrize("cls", [PortalAccessRevoked, ContactDeleted])
def test_revoke_and_delete_end_every_token_and_destroy_the_credentials(
    cls: type[EventEnvelope],
) -> None:
    assert ended_by(event(cls, "c1", 3, Empty())) == ContactTokensEnd(
        "c1", "acme", credentials=True
    )


def test_turning_mfa_on_ends_the_orgs_password_only_sessions() -> None:
    assert ended_by(event(MfaPolicyEnabled, "acme", 1, Empty())) == PasswordSessionsEnd("acme")


@pytest.mark.parametrize(
    "harmless",
    [
        event(MfaPolicyDisabled, "acme", 2, Empty()),
        event(PortalNameSet, "acme", 3, PortalNameSetPayload(portal_name="Acme")),
        event(
            ContactCreated,
            "c1",
            1,
            ContactCreatedPayload(kind="vendor", display_name="V", email="c1@example.com"),
        ),
        granted(2),
    ],
    ids=lambda e: e.event_type,
)
def test_other_events_end_nothing(harmless: Event) -> None:
    # Turning MFA off or granting access again loosens nothing a session relies on.
    assert ended_by(harmless) is None


def contact(portal_access: bool = True, deleted: bool = False) -> ProjectedContact:
    return ProjectedContact("c1", "acme", version=2, portal_access=portal_access, deleted=deleted)


@pytest.mark.parametrize(
    ("mfa", "policy_enabled", "admitted"),
    [
        (True, True, True),
        (True, False, True),
        (False, False, True),
        # A session on the password alone no longer meets a policy that is on (or counts
        # as on while its stream waits beyond a gap).
        (False, True, False),
    ],
)
def test_a_session_counts_by_its_factors_against_the_policy_now(
    mfa: bool, policy_enabled: bool, admitted: bool
) -> None:
    decided = session_admitted(mfa=mfa, contact=contact(), policy_enabled=policy_enabled)
    assert decided is admitted


@pytest.mark.parametrize(
    "gone",
    [None, contact(portal_access=False), contact(portal_access=False, deleted=True)],
    ids=["unknown", "revoked", "deleted"],
)
def test_no_session_counts_without_live_portal_access(gone: ProjectedContact | None) -> None:
    for mfa in (True, False):
        assert session_admitted(mfa=mfa, contact=gone, policy_enabled=False) is False


def test_explain_counts_an_enrollment_shredded_by_a_revoke_as_gone() -> None:
    """auth shreds the enrollment on a revoke and records it (`by_epoch` 0: no reset
    yet); the audit log's fold by the same rule then agrees: not enrolled, `enroll`."""
    enrollment_id = uuid.uuid4()
    created = event(
        ContactCreated,
        "c1",
        1,
        ContactCreatedPayload(kind="vendor", display_name="V", email="c1@example.com"),
    )
    enrolled = event(
        MfaEnrolled, "c1", 1, MfaEnrolledPayload(enrollment_id=enrollment_id, mfa_epoch=0)
    )
    revoked = event(PortalAccessRevoked, "c1", 3, Empty())
    invalidated = event(
        MfaEnrollmentInvalidated,
        "c1",
        2,
        MfaEnrollmentInvalidatedPayload(enrollment_id=enrollment_id, by_epoch=0),
    )
    history = [event(MfaPolicyEnabled, "acme", 1, Empty()), created, granted(2), enrolled]
    assert requirement_from_history("acme", "c1", history).requirement == "totp"

    regranted = [*history, revoked, invalidated, granted(4)]
    decision = requirement_from_history("acme", "c1", regranted)
    assert (decision.requirement, decision.enrolled, decision.mfa_epoch) == ("enroll", False, 0)

"""The login decision over an event history: what the audit log's `explain` asks.

It folds the same events the auth service projects, and asks the same `decide`, so the
two answers agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.auth.domain.login_requirement import ActiveEnrollment, LoginRequirement, decide
from services.auth.domain.projected import OrgPolicy, ProjectedContact
from shared.events import (
    ContactCreated,
    ContactDeleted,
    Event,
    MfaEnrolled,
    MfaEnrollmentInvalidated,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    PortalAccessGranted,
    PortalAccessRevoked,
    PortalNameSet,
)


def requirement_from_history(
    org_id: str, contact_id: str, events: Iterable[Event]
) -> LoginRequirement:
    policy = OrgPolicy(org_id)
    contact: ProjectedContact | None = None
    enrollment: ActiveEnrollment | None = None
    for event in events:
        if event.org_id != org_id:
            continue
        match event:
            case MfaPolicyEnabled() | MfaPolicyDisabled() | PortalNameSet():
                policy = policy.evolve(event)
            case (
                ContactCreated()
                | PortalAccessGranted()
                | PortalAccessRevoked()
                | MfaReset()
                | ContactDeleted()
            ) if event.aggregate_id == contact_id:
                contact = (contact or ProjectedContact(contact_id, org_id)).evolve(event)
            case MfaEnrolled(payload=p) if event.aggregate_id == contact_id:
                enrollment = ActiveEnrollment(p.enrollment_id, p.mfa_epoch, event.event_id)
            case MfaEnrollmentInvalidated(payload=p) if event.aggregate_id == contact_id:
                if enrollment is not None and enrollment.enrollment_id == p.enrollment_id:
                    enrollment = None
    return decide(policy, contact, enrollment)

"""The login decision over an event history: what the audit log's `explain` asks.

It folds the same events the auth service projects, by the same gapless rule, and asks
the same `decide`, so the two answers agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts import Event, MfaEnrolled, MfaEnrollmentInvalidated
from shared.login_rule.gapless import in_order
from shared.login_rule.login_requirement import (
    ActiveEnrollment,
    Held,
    LoginRequirement,
    decide,
)
from shared.login_rule.projected import ContactEvent, OrgPolicy, PolicyEvent, ProjectedContact


def requirement_from_history(
    org_id: str, contact_id: str, events: Iterable[Event]
) -> LoginRequirement:
    policy = OrgPolicy(org_id)
    contact: ProjectedContact | None = None
    enrollment: ActiveEnrollment | None = None
    policy_held: tuple[PolicyEvent, ...] = ()
    contact_held: tuple[ContactEvent, ...] = ()
    for event in events:
        if event.org_id != org_id:
            continue
        # The policy's and the contact's events are the ones the projection folds.
        if isinstance(event, PolicyEvent):
            policy_step = in_order(policy.version, policy_held, [event])
            for policy_event in policy_step.applicable:
                policy = policy.evolve(policy_event)
            policy_held = policy_step.held
            continue
        if isinstance(event, ContactEvent):
            if event.aggregate_id == contact_id:
                contact_step = in_order(contact.version if contact else 0, contact_held, [event])
                for applied in contact_step.applicable:
                    contact = (contact or ProjectedContact(contact_id, org_id)).evolve(applied)
                contact_held = contact_step.held
            continue
        match event:
            case MfaEnrolled(payload=p) if event.aggregate_id == contact_id:
                enrollment = ActiveEnrollment(p.enrollment_id, p.mfa_epoch, event.event_id)
            case MfaEnrollmentInvalidated(payload=p) if event.aggregate_id == contact_id:
                if enrollment is not None and enrollment.enrollment_id == p.enrollment_id:
                    enrollment = None
    held = Held(
        policy=tuple(e.aggregate_version for e in policy_held),
        contact=tuple(e.aggregate_version for e in contact_held),
    )
    return decide(policy, contact, enrollment, held)

"""The login decision of DESIGN.md §1: a pure function of projected state.

The audit CLI's `explain` calls this same function over the stored event log, so the two
answers cannot drift apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from shared.login_rule.projected import OrgPolicy, ProjectedContact

Requirement = Literal["password", "totp", "enroll"]


@dataclass(frozen=True)
class ActiveEnrollment:
    """An enabled TOTP enrollment and the contact epoch auth knew when it was enabled."""

    enrollment_id: uuid.UUID
    mfa_epoch: int
    enrolled_event_id: uuid.UUID


@dataclass(frozen=True)
class Held:
    """Versions waiting beyond a gap (DESIGN.md §11), in the org's policy and the contact's stream.

    While any waits, the projected state may be missing what would tighten the decision
    (a policy switched on, access revoked), so the decision takes the strict side.
    """

    policy: tuple[int, ...] = ()
    contact: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.policy and not self.contact


@dataclass(frozen=True)
class LoginRequirement:
    requirement: Requirement
    known: bool
    policy_enabled: bool
    enrolled: bool
    mfa_epoch: int
    decided_by: tuple[uuid.UUID, ...]
    held: Held = Held()

    @property
    def complete(self) -> bool:
        return self.held.complete

    def as_dict(self) -> dict[str, object]:
        return {
            "requirement": self.requirement,
            "known": self.known,
            "policy_enabled": self.policy_enabled,
            "enrolled": self.enrolled,
            "mfa_epoch": self.mfa_epoch,
            "decided_by": [str(e) for e in self.decided_by],
            "complete": self.complete,
            "held_versions": {"policy": list(self.held.policy), "contact": list(self.held.contact)},
        }


def is_active(enrollment: ActiveEnrollment | None, contact: ProjectedContact | None) -> bool:
    """A reset wins over any enrollment enabled before auth saw it, whatever the arrival order."""
    if enrollment is None:
        return False
    return enrollment.mfa_epoch >= (contact.mfa_epoch if contact else 0)


def decide(
    policy: OrgPolicy,
    contact: ProjectedContact | None,
    enrollment: ActiveEnrollment | None,
    held: Held = Held(),
) -> LoginRequirement:
    # An enrollment counts only for a contact known in this org.
    enrolled = contact is not None and is_active(enrollment, contact)
    # Fail closed: with events held beyond a gap, the policy counts as on, whatever the
    # applied ones say (a forged "disabled" at a high version must not switch it off).
    policy_enabled = policy.mfa_enabled or not held.complete
    if enrolled:
        requirement: Requirement = "totp"
    elif policy_enabled:
        requirement = "enroll"
    else:
        requirement = "password"

    decided_by: list[uuid.UUID] = []
    if policy.policy_event_id is not None:
        decided_by.append(policy.policy_event_id)
    if contact is not None and contact.reset_event_id is not None:
        decided_by.append(contact.reset_event_id)
    if enrolled and enrollment is not None:
        decided_by.append(enrollment.enrolled_event_id)
    return LoginRequirement(
        requirement=requirement,
        known=contact is not None,
        policy_enabled=policy_enabled,
        enrolled=enrolled,
        mfa_epoch=contact.mfa_epoch if contact else 0,
        decided_by=tuple(decided_by),
        held=held,
    )

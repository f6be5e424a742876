"""The login decision of DESIGN.md §1: a pure function of projected state.

The audit CLI's `explain` calls this same function over the stored event log, so the two
answers cannot drift apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from services.auth.domain.projected import OrgPolicy, ProjectedContact

Requirement = Literal["password", "totp", "enroll"]


@dataclass(frozen=True)
class ActiveEnrollment:
    """An enabled TOTP enrollment and the contact epoch auth knew when it was enabled."""

    enrollment_id: uuid.UUID
    mfa_epoch: int
    enrolled_event_id: uuid.UUID


@dataclass(frozen=True)
class LoginRequirement:
    requirement: Requirement
    known: bool
    policy_enabled: bool
    enrolled: bool
    mfa_epoch: int
    decided_by: tuple[uuid.UUID, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "requirement": self.requirement,
            "known": self.known,
            "policy_enabled": self.policy_enabled,
            "enrolled": self.enrolled,
            "mfa_epoch": self.mfa_epoch,
            "decided_by": [str(e) for e in self.decided_by],
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
) -> LoginRequirement:
    # An enrollment counts only for a contact known in this org.
    enrolled = contact is not None and is_active(enrollment, contact)
    if enrolled:
        requirement: Requirement = "totp"
    elif policy.mfa_enabled:
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
        policy_enabled=policy.mfa_enabled,
        enrolled=enrolled,
        mfa_epoch=contact.mfa_epoch if contact else 0,
        decided_by=tuple(decided_by),
    )

"""A TOTP enrollment: an event-sourced aggregate whose events live in its account's stream.

Started (a key shown), verified (a code confirmed it, backup codes issued), enabled (the
second factor of every later login), invalidated (reset, revoked, or replaced by a newer
one; its secret and codes destroyed). `fold` rebuilds every enrollment of a contact from
the account's events; the `enrollments` rows are their snapshots.

Row-only, beside the snapshot: the sealed secret (no event may carry it), the replay
guard's last time step, and the epoch a not yet enabled enrollment was started under
(the epoch that counts is the one `MfaEnrolled` records).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shared.contracts import (
    EventEnvelope,
    MfaEnrolled,
    MfaEnrollmentInvalidated,
    MfaEnrollmentStarted,
    MfaEnrollmentVerified,
)
from shared.login_rule.login_requirement import ActiveEnrollment, is_active
from shared.login_rule.projected import ProjectedContact

Status = Literal["pending", "verified", "enabled", "invalidated"]


@dataclass(frozen=True)
class Enrollment:
    enrollment_id: uuid.UUID
    contact_id: str
    org_id: str
    status: Status
    mfa_epoch: int
    enrolled_event_id: uuid.UUID | None = None
    enabled_at: datetime | None = None
    secret_blob: bytes | None = None

    def as_active(self) -> ActiveEnrollment | None:
        if self.status != "enabled" or self.enrolled_event_id is None:
            return None
        return ActiveEnrollment(self.enrollment_id, self.mfa_epoch, self.enrolled_event_id)

    def is_active(self, contact: ProjectedContact | None) -> bool:
        """The one rule: enabled, and not outranked by a reset (the login rule's epochs).

        The login decision asks the same `is_active` over the row the lookup's SQL picks;
        tests/integration/test_auth_aggregates.py checks that the two pick alike.
        """
        return contact is not None and is_active(self.as_active(), contact)

    @property
    def can_verify(self) -> bool:
        return self.status in ("pending", "verified")

    @property
    def can_enable(self) -> bool:
        return self.status == "verified"

    def ends_with_reset(self, epoch: int) -> bool:
        """A reset to `epoch` ends every enrollment of an older epoch that is not over yet."""
        return self.status != "invalidated" and self.mfa_epoch < epoch

    def snapshot(self) -> tuple[object, ...]:
        """What the events decide (compared with the row by the tests)."""
        enrolled_epoch = self.mfa_epoch if self.enrolled_event_id is not None else None
        return (self.status, enrolled_epoch, self.enrolled_event_id, self.enabled_at)


def fold(contact_id: str, org_id: str, events: Iterable[EventEnvelope]) -> list[Enrollment]:
    """Every enrollment of the contact, in the order started, as its account's events say."""
    found: dict[uuid.UUID, Enrollment] = {}
    for event in events:
        match event:
            case MfaEnrollmentStarted(payload=ref):
                found[ref.enrollment_id] = Enrollment(
                    ref.enrollment_id, contact_id, org_id, "pending", 0
                )
            case MfaEnrollmentVerified(payload=ref):
                found[ref.enrollment_id] = replace(found[ref.enrollment_id], status="verified")
            case MfaEnrolled(payload=enrolled):
                # Enabling one replaces every other that is not over yet.
                for other_id, other in found.items():
                    if other.status != "invalidated" and other_id != enrolled.enrollment_id:
                        found[other_id] = replace(other, status="invalidated")
                found[enrolled.enrollment_id] = replace(
                    found[enrolled.enrollment_id],
                    status="enabled",
                    mfa_epoch=enrolled.mfa_epoch,
                    enrolled_event_id=event.event_id,
                    enabled_at=event.occurred_at,
                )
            case MfaEnrollmentInvalidated(payload=ended):
                found[ended.enrollment_id] = replace(
                    found[ended.enrollment_id], status="invalidated"
                )
            case _:
                pass
    return list(found.values())


def current(enrollments: Iterable[Enrollment]) -> Enrollment | None:
    """The contact's enabled enrollment, the latest if ever more than one (as the SQL picks)."""
    enabled = [e for e in enrollments if e.status == "enabled"]
    return max(enabled, key=lambda e: e.enabled_at or datetime.min, default=None)

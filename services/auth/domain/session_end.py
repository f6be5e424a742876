"""When a portal session ends before it expires (no I/O): the rule auth's reactions and
its session check follow.

A session is a bearer token that outlives the login that issued it, so every change that
would have refused that login must also end the sessions it issued:

- `MfaReset` (the "lost phone" response): every token of the contact, sessions that
  passed a second factor too; enrollments of older epochs are shredded.
- `PortalAccessRevoked`, `ContactDeleted`: every token of the contact; the password and
  every enrollment are destroyed, so a later grant starts from nothing.
- `MfaPolicyEnabled`: the org's password-only sessions (`mfa` false); sessions that
  passed a second factor stay.
- A new password (an accepted invitation; not an event auth consumes, so the flow
  `login.accept_invitation` applies it): every token of the contact.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts import (
    ContactDeleted,
    Event,
    MfaPolicyEnabled,
    MfaReset,
    PortalAccessRevoked,
)
from shared.login_rule.projected import ProjectedContact


@dataclass(frozen=True)
class ContactTokensEnd:
    """Every token the contact holds ends: sessions of both kinds, challenges, enrollments."""

    contact_id: str
    org_id: str
    # A reset: the contact's enrollments enabled before this epoch are shredded.
    shred_below_epoch: int | None = None
    # Revoked or deleted: the password and every enrollment (any epoch) are destroyed.
    credentials: bool = False


@dataclass(frozen=True)
class PasswordSessionsEnd:
    """The org's sessions issued on a password alone end; those with a second factor stay."""

    org_id: str


SessionsEnd = ContactTokensEnd | PasswordSessionsEnd


def ended_by(event: Event) -> SessionsEnd | None:
    """What an applied event ends; None for an event that leaves every session alone."""
    match event:
        case MfaReset(payload=reset):
            return ContactTokensEnd(
                event.aggregate_id, event.org_id, shred_below_epoch=reset.mfa_epoch
            )
        case PortalAccessRevoked() | ContactDeleted():
            return ContactTokensEnd(event.aggregate_id, event.org_id, credentials=True)
        case MfaPolicyEnabled():
            return PasswordSessionsEnd(event.aggregate_id)
        case _:
            return None


def session_admitted(*, mfa: bool, contact: ProjectedContact | None, policy_enabled: bool) -> bool:
    """Whether a live, unexpired session still counts, judged against the state now.

    The reactions above end sessions once their event applies; this check closes the
    window in between (and the race with a login that read the state just before): no
    session for a contact without portal access, and no password-only session while the
    org's policy is on (callers count a policy stream waiting beyond a gap as on).
    """
    if contact is None or contact.deleted or not contact.portal_access:
        return False
    return mfa or not policy_enabled

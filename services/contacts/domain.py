"""The contact aggregate: a customer or vendor, its portal access and its `mfa_epoch`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactDeleted,
    ContactKind,
    ContactUnlocked,
    ContactUnlockedPayload,
    Empty,
    Event,
    EventEnvelope,
    MfaReset,
    MfaResetPayload,
    Payload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)


class ContactRejected(Exception):
    """The command cannot apply to this contact; the message is shown to the admin."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Contact:
    contact_id: str
    org_id: str = ""
    version: int = 0
    kind: ContactKind = "customer"
    display_name: str = ""
    email: str = ""
    portal_access: bool = False
    invitation_expires_at: datetime | None = None
    mfa_epoch: int = 0
    deleted: bool = False

    @property
    def exists(self) -> bool:
        return self.version > 0 and not self.deleted

    @classmethod
    def from_events(cls, contact_id: str, events: Iterable[Event]) -> Contact:
        state = cls(contact_id)
        for event in events:
            state = state.apply(event)
        return state

    def apply(self, event: Event) -> Contact:
        moved = replace(self, version=event.aggregate_version)
        match event:
            case ContactCreated(payload=p):
                return replace(
                    moved,
                    org_id=event.org_id,
                    kind=p.kind,
                    display_name=p.display_name,
                    email=p.email,
                )
            case PortalAccessGranted(payload=p):
                return replace(moved, portal_access=True, invitation_expires_at=p.expires_at)
            case PortalAccessRevoked():
                return replace(moved, portal_access=False, invitation_expires_at=None)
            case MfaReset(payload=p):
                return replace(moved, mfa_epoch=p.mfa_epoch)
            case ContactDeleted():
                return replace(moved, deleted=True, portal_access=False)
            case ContactUnlocked():
                return moved
            case _:
                return self

    # --- decisions ------------------------------------------------------------------------

    def create(
        self, org_id: str, kind: ContactKind, display_name: str, email: str, cause: Cause
    ) -> list[EventEnvelope]:
        if self.version > 0:
            raise ContactRejected("conflict", f"contact {self.contact_id} already exists")
        payload = ContactCreatedPayload(kind=kind, display_name=display_name, email=email)
        return [self._next(ContactCreated, payload, cause, org_id=org_id)]

    def grant_portal_access(
        self, invitation_hash: str, valid_for: timedelta, cause: Cause
    ) -> list[EventEnvelope]:
        # Granting again issues a new invitation; the newest one is the one that works.
        payload = PortalAccessGrantedPayload(
            email=self.email, invitation_hash=invitation_hash, expires_at=cause.at + valid_for
        )
        return [self._next(PortalAccessGranted, payload, cause)]

    def revoke_portal_access(self, cause: Cause) -> list[EventEnvelope]:
        if not self.portal_access:
            return []
        return [self._next(PortalAccessRevoked, Empty(), cause)]

    def reset_mfa(self, reason: str, cause: Cause) -> list[EventEnvelope]:
        payload = MfaResetPayload(mfa_epoch=self.mfa_epoch + 1, reason=reason)
        return [self._next(MfaReset, payload, cause)]

    def unlock(self, reason: str, cause: Cause) -> list[EventEnvelope]:
        if not self.portal_access:
            raise ContactRejected("conflict", f"contact {self.contact_id} has no portal access")
        return [self._next(ContactUnlocked, ContactUnlockedPayload(reason=reason), cause)]

    def delete(self, cause: Cause) -> list[EventEnvelope]:
        return [self._next(ContactDeleted, Empty(), cause)]

    def _next(
        self,
        cls: type[EventEnvelope],
        payload: Payload,
        cause: Cause,
        *,
        org_id: str | None = None,
    ) -> EventEnvelope:
        return cls.new(
            org_id=org_id or self.org_id,
            aggregate_id=self.contact_id,
            aggregate_version=self.version + 1,
            payload=payload,
            cause=cause,
        )

"""portal.contacts.events: what contacts publishes (aggregate contact, key contact_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Empty, EventEnvelope, Payload
from shared.contracts.topics import CONTACTS_EVENTS

ContactKind = Literal["customer", "vendor"]


class _ContactEvent(EventEnvelope):
    topic = CONTACTS_EVENTS
    aggregate_kind = "contact"


class ContactCreatedPayload(Payload):
    kind: ContactKind
    display_name: str
    email: str


class ContactCreated(_ContactEvent):
    event_type: Literal["ContactCreated"] = "ContactCreated"
    payload: ContactCreatedPayload


class PortalAccessGrantedPayload(Payload):
    email: str
    invitation_hash: str
    expires_at: datetime


class PortalAccessGranted(_ContactEvent):
    event_type: Literal["PortalAccessGranted"] = "PortalAccessGranted"
    payload: PortalAccessGrantedPayload


class PortalAccessRevoked(_ContactEvent):
    event_type: Literal["PortalAccessRevoked"] = "PortalAccessRevoked"
    payload: Empty


class MfaResetPayload(Payload):
    mfa_epoch: int = Field(ge=1)
    reason: str = ""


class MfaReset(_ContactEvent):
    event_type: Literal["MfaReset"] = "MfaReset"
    payload: MfaResetPayload


class ContactDeleted(_ContactEvent):
    event_type: Literal["ContactDeleted"] = "ContactDeleted"
    payload: Empty


class ContactUnlockedPayload(Payload):
    reason: str = Field(default="", max_length=500)


class ContactUnlocked(_ContactEvent):
    """An admin lifted the contact's login limits: auth clears the second-factor lock and
    the failed-password counters of the contact's login (not a disabled authenticator:
    that takes a reset, a new enrollment)."""

    event_type: Literal["ContactUnlocked"] = "ContactUnlocked"
    payload: ContactUnlockedPayload

"""The event contracts: one envelope, every event of DESIGN.md §3, their topics and Kafka form.

This module is the single owner of what crosses service lines as an event. Audit consumers
read the JSON Schema exported from these models (`event_json_schema`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_serializer,
)

if TYPE_CHECKING:
    from shared.signing import SignedRecord

PREFERENCES_EVENTS = "portal.preferences.events"
CONTACTS_EVENTS = "portal.contacts.events"
AUTH_EVENTS = "portal.auth.events"
PREFERENCES_COMMANDS = "portal.preferences.commands"
CONTACTS_COMMANDS = "portal.contacts.commands"
ADMIN_REPLIES = "portal.admin.replies"
DEADLETTER = "portal.deadletter"

EVENT_TOPICS = (PREFERENCES_EVENTS, CONTACTS_EVENTS, AUTH_EVENTS)
ALL_TOPICS = (*EVENT_TOPICS, PREFERENCES_COMMANDS, CONTACTS_COMMANDS, ADMIN_REPLIES, DEADLETTER)

ContactKind = Literal["customer", "vendor"]


@dataclass(frozen=True)
class Cause:
    """Who and what made events happen, and when: copied into every envelope it causes."""

    actor: str
    at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


# defer_build: a model's validator is built when it is first used, not at import. The admin
# CLI imports every contract to send one command; building all ~60 models cost it ~40 ms.
class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EventEnvelope(BaseModel):
    """Fields shared by every event; subclasses fix `event_type` and `payload`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    topic: ClassVar[str]
    aggregate_kind: ClassVar[str]
    current_schema_version: ClassVar[int] = 1

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: datetime
    org_id: str = Field(min_length=1)
    aggregate_type: str
    aggregate_id: str = Field(min_length=1)
    aggregate_version: int = Field(ge=1)
    correlation_id: str
    causation_id: str | None = None
    actor: str = Field(min_length=1)
    payload: Payload
    # Not part of the event: the signed Kafka record it was read from, once a consumer has
    # verified it (`shared.signing.verified_event`); the audit log keeps it as evidence.
    _signed_record: SignedRecord | None = PrivateAttr(default=None)

    @property
    def signed_record(self) -> SignedRecord | None:
        return self._signed_record

    def keep_signed_record(self, record: SignedRecord) -> None:
        self._signed_record = record

    def __eq__(self, other: object) -> bool:
        # Equal by content: where an event was read from (its signed record) is not content.
        if not isinstance(other, EventEnvelope):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @field_serializer("occurred_at")
    def _rfc3339_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @classmethod
    def new(
        cls,
        *,
        org_id: str,
        aggregate_id: str,
        aggregate_version: int,
        payload: Payload,
        cause: Cause,
    ) -> Self:
        event_type = cls.model_fields["event_type"].default
        return cls(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=cls.current_schema_version,
            occurred_at=cause.at,
            org_id=org_id,
            aggregate_type=cls.aggregate_kind,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            correlation_id=cause.correlation_id or str(uuid.uuid4()),
            causation_id=cause.causation_id,
            actor=cause.actor,
            payload=payload,
        )

    def kafka_key(self) -> bytes:
        return self.aggregate_id.encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [
            ("event_type", self.event_type.encode()),
            ("schema_version", str(self.schema_version).encode()),
        ]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# --- portal.preferences.events (aggregate: org_preferences, key: org_id) -------------------


class Empty(Payload):
    pass


class _PreferencesEvent(EventEnvelope):
    topic = PREFERENCES_EVENTS
    aggregate_kind = "org_preferences"


class MfaPolicyEnabled(_PreferencesEvent):
    event_type: Literal["MfaPolicyEnabled"] = "MfaPolicyEnabled"
    payload: Empty


class MfaPolicyDisabled(_PreferencesEvent):
    event_type: Literal["MfaPolicyDisabled"] = "MfaPolicyDisabled"
    payload: Empty


class PortalNameSetPayload(Payload):
    portal_name: str = Field(min_length=1, max_length=200)


class PortalNameSet(_PreferencesEvent):
    event_type: Literal["PortalNameSet"] = "PortalNameSet"
    payload: PortalNameSetPayload


# --- portal.contacts.events (aggregate: contact, key: contact_id) --------------------------


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


# --- portal.auth.events (aggregate: portal_account, key: contact_id) -----------------------


class _AuthEvent(EventEnvelope):
    topic = AUTH_EVENTS
    aggregate_kind = "portal_account"


class PortalPasswordSet(_AuthEvent):
    event_type: Literal["PortalPasswordSet"] = "PortalPasswordSet"
    payload: Empty


class EnrollmentRef(Payload):
    enrollment_id: uuid.UUID


class MfaEnrollmentStarted(_AuthEvent):
    event_type: Literal["MfaEnrollmentStarted"] = "MfaEnrollmentStarted"
    payload: EnrollmentRef


class MfaEnrolledPayload(Payload):
    enrollment_id: uuid.UUID
    mfa_epoch: int = Field(ge=0)
    method: Literal["totp"] = "totp"


class MfaEnrolled(_AuthEvent):
    event_type: Literal["MfaEnrolled"] = "MfaEnrolled"
    payload: MfaEnrolledPayload


class MfaEnrollmentInvalidatedPayload(Payload):
    enrollment_id: uuid.UUID
    # The contact's epoch that ended it: a reset's new epoch (>= 1), or, when revoked
    # access or a deleted contact ended it, the epoch then in force (0 before any reset).
    # The event named by `causation_id` says which.
    by_epoch: int = Field(ge=0)


class MfaEnrollmentInvalidated(_AuthEvent):
    event_type: Literal["MfaEnrollmentInvalidated"] = "MfaEnrollmentInvalidated"
    payload: MfaEnrollmentInvalidatedPayload


class BackupCodesIssuedPayload(Payload):
    count: int = Field(ge=0)


class BackupCodesIssued(_AuthEvent):
    event_type: Literal["BackupCodesIssued"] = "BackupCodesIssued"
    payload: BackupCodesIssuedPayload


class BackupCodeUsedPayload(Payload):
    remaining: int = Field(ge=0)


class BackupCodeUsed(_AuthEvent):
    event_type: Literal["BackupCodeUsed"] = "BackupCodeUsed"
    payload: BackupCodeUsedPayload


class LoginSucceededPayload(Payload):
    factors: list[Literal["password", "totp", "backup_code"]]


class LoginSucceeded(_AuthEvent):
    event_type: Literal["LoginSucceeded"] = "LoginSucceeded"
    payload: LoginSucceededPayload


class LoginFailedPayload(Payload):
    reason: str


class LoginFailed(_AuthEvent):
    event_type: Literal["LoginFailed"] = "LoginFailed"
    payload: LoginFailedPayload


class OtpReplayRejected(_AuthEvent):
    event_type: Literal["OtpReplayRejected"] = "OtpReplayRejected"
    payload: Empty


class ContactLockedOutPayload(Payload):
    until: datetime


class ContactLockedOut(_AuthEvent):
    event_type: Literal["ContactLockedOut"] = "ContactLockedOut"
    payload: ContactLockedOutPayload


class MfaAuthenticatorDisabledPayload(Payload):
    failures: int = Field(ge=1)


class MfaAuthenticatorDisabled(_AuthEvent):
    """So many second-factor failures in a row that the authenticator is refused for good;
    only an admin's reset (and a new enrollment) lets the contact in again."""

    event_type: Literal["MfaAuthenticatorDisabled"] = "MfaAuthenticatorDisabled"
    payload: MfaAuthenticatorDisabledPayload


Event = Annotated[
    MfaPolicyEnabled
    | MfaPolicyDisabled
    | PortalNameSet
    | ContactCreated
    | PortalAccessGranted
    | PortalAccessRevoked
    | MfaReset
    | ContactDeleted
    | ContactUnlocked
    | PortalPasswordSet
    | MfaEnrollmentStarted
    | MfaEnrolled
    | MfaEnrollmentInvalidated
    | BackupCodesIssued
    | BackupCodeUsed
    | LoginSucceeded
    | LoginFailed
    | OtpReplayRejected
    | ContactLockedOut
    | MfaAuthenticatorDisabled,
    Field(discriminator="event_type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))
# Derived from `Event`, so each event class is listed once: adding one to the union is
# all it takes for readers to parse it and for the exported documents to name it.
EVENT_TYPES: dict[str, type[EventEnvelope]] = {
    cls.model_fields["event_type"].default: cls for cls in get_args(get_args(Event)[0])
}

# Upcasters turn a stored raw envelope of (event_type, schema_version) into the next version.
# Events are immutable and kept forever, so readers carry every step up to the current one.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class EventRejected(ValueError):
    """A message that is not a valid event; the reason is safe to log and dead-letter."""


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    event_type = raw.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        # The name comes from whoever sent the message: quote only a short prefix of it.
        raise EventRejected(f"unknown event_type {str(event_type)[:40]!r}")
    cls = EVENT_TYPES[event_type]
    version = raw.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise EventRejected(f"invalid schema_version {version!r} for {event_type}")
    if version > cls.current_schema_version:
        raise EventRejected(f"{event_type} v{version} is newer than this reader")
    while version < cls.current_schema_version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise EventRejected(f"no upcaster for {event_type} v{version}")
        raw = step(raw)
        version = raw["schema_version"]
    return raw


def parse_event(value: bytes | str | Mapping[str, Any]) -> Event:
    """Validate one event from its wire form, upcasting old schema versions."""
    if isinstance(value, bytes | str):
        # Fast path for the common case, a current-version event: pydantic-core parses and
        # validates the JSON in one pass. Anything else takes the path that explains itself.
        try:
            event = EVENT_ADAPTER.validate_json(value)
        except ValidationError:
            pass
        else:
            if event.schema_version == type(event).current_schema_version:
                return event
    try:
        raw = json.loads(value) if isinstance(value, bytes | str) else dict(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRejected(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(raw, dict):
        raise EventRejected("event is not a JSON object")
    try:
        return EVENT_ADAPTER.validate_python(upcast(raw))
    except EventRejected:
        raise
    except ValidationError as exc:
        # pydantic's text can echo input values; keep only field locations and messages.
        errors = exc.errors(include_input=False)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
        )
        raise EventRejected(f"invalid {raw.get('event_type')}: {summary}") from None


def now_utc() -> datetime:
    return datetime.now(UTC)


def event_json_schema() -> dict[str, Any]:
    return EVENT_ADAPTER.json_schema(mode="serialization")

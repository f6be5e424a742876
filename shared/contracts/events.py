"""Every event as one discriminated union, and reading one from its wire form.

Adding an event class to `Event` is all it takes for readers to parse it and for the
exported documents (shared.contracts.schemas) to name it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from shared.contracts.auth_events import (
    BackupCodesIssued,
    BackupCodeUsed,
    ContactLockedOut,
    LoginFailed,
    LoginSucceeded,
    MfaAuthenticatorDisabled,
    MfaEnrolled,
    MfaEnrollmentInvalidated,
    MfaEnrollmentStarted,
    MfaEnrollmentVerified,
    MfaLockoutLifted,
    OtpReplayRejected,
    PortalPasswordSet,
)
from shared.contracts.contacts_events import (
    ContactCreated,
    ContactDeleted,
    ContactUnlocked,
    MfaReset,
    PortalAccessGranted,
    PortalAccessRevoked,
)
from shared.contracts.envelope import EventEnvelope
from shared.contracts.preferences_events import MfaPolicyDisabled, MfaPolicyEnabled, PortalNameSet

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
    | MfaEnrollmentVerified
    | MfaEnrolled
    | MfaEnrollmentInvalidated
    | BackupCodesIssued
    | BackupCodeUsed
    | LoginSucceeded
    | LoginFailed
    | OtpReplayRejected
    | ContactLockedOut
    | MfaAuthenticatorDisabled
    | MfaLockoutLifted,
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

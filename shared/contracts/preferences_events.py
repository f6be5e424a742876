"""portal.preferences.events: what preferences publishes (aggregate org_preferences, key
org_id)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Empty, EventEnvelope, Payload
from shared.contracts.topics import PREFERENCES_EVENTS


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

"""The org portal preferences aggregate: the MFA policy switch and the portal's name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.contracts import (
    Cause,
    Empty,
    Event,
    EventEnvelope,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    PortalNameSet,
    PortalNameSetPayload,
)


@dataclass(frozen=True)
class OrgPreferences:
    org_id: str
    version: int = 0
    mfa_enabled: bool = False
    portal_name: str | None = None

    @classmethod
    def from_events(cls, org_id: str, events: Iterable[Event]) -> OrgPreferences:
        state = cls(org_id)
        for event in events:
            state = state.apply(event)
        return state

    def apply(self, event: Event) -> OrgPreferences:
        match event:
            case MfaPolicyEnabled():
                return replace(self, version=event.aggregate_version, mfa_enabled=True)
            case MfaPolicyDisabled():
                return replace(self, version=event.aggregate_version, mfa_enabled=False)
            case PortalNameSet():
                return replace(
                    self, version=event.aggregate_version, portal_name=event.payload.portal_name
                )
            case _:
                return self

    @property
    def issuer(self) -> str:
        """What authenticator apps show: the portal's name, or the org id until one is set."""
        return self.portal_name or self.org_id

    def set_mfa_policy(self, enabled: bool, cause: Cause) -> list[EventEnvelope]:
        # Switching to the state it is already in records nothing: no event, same answer.
        if enabled == self.mfa_enabled:
            return []
        cls = MfaPolicyEnabled if enabled else MfaPolicyDisabled
        return [self._next(cls, Empty(), cause)]

    def set_portal_name(self, name: str, cause: Cause) -> list[EventEnvelope]:
        if name == self.portal_name:
            return []
        return [self._next(PortalNameSet, PortalNameSetPayload(portal_name=name), cause)]

    def _next(
        self,
        cls: type[EventEnvelope],
        payload: Empty | PortalNameSetPayload,
        cause: Cause,
    ) -> EventEnvelope:
        return cls.new(
            org_id=self.org_id,
            aggregate_id=self.org_id,
            aggregate_version=self.version + 1,
            payload=payload,
            cause=cause,
        )

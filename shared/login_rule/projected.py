"""What auth knows of other services' aggregates, folded from their events (no I/O).

Each fold ignores an event whose aggregate version it has already passed, so a
redelivered or duplicated event changes nothing; and it refuses one beyond a gap, which
`gapless.in_order` holds back until the missing versions arrive (DESIGN.md §11).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from shared.contracts import (
    ContactCreated,
    ContactDeleted,
    ContactUnlocked,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    PortalAccessGranted,
    PortalAccessRevoked,
    PortalNameSet,
)
from shared.login_rule.gapless import VersionGap

_State = TypeVar("_State", "OrgPolicy", "ProjectedContact")

PolicyEvent = MfaPolicyEnabled | MfaPolicyDisabled | PortalNameSet
ContactEvent = (
    ContactCreated
    | PortalAccessGranted
    | PortalAccessRevoked
    | MfaReset
    | ContactDeleted
    | ContactUnlocked
)


@dataclass(frozen=True)
class OrgPolicy:
    org_id: str
    version: int = 0
    mfa_enabled: bool = False
    portal_name: str | None = None
    # The event that put the switch where it is: part of every decision's `decided_by`.
    policy_event_id: uuid.UUID | None = None

    def evolve(self, event: PolicyEvent) -> OrgPolicy:
        if _already_applied(self, event):
            return self
        match event:
            case MfaPolicyEnabled() | MfaPolicyDisabled():
                changes = {
                    "mfa_enabled": isinstance(event, MfaPolicyEnabled),
                    "policy_event_id": event.event_id,
                }
            case PortalNameSet():
                changes = {"portal_name": event.payload.portal_name}
        return _changed(self, version=event.aggregate_version, **changes)

    def row(self) -> tuple[object, ...]:
        """The fields in declaration order (the projection table's column order)."""
        return tuple(self.__dict__.values())

    @classmethod
    def from_row(cls, values: Sequence[object]) -> OrgPolicy:
        """The inverse of `row` (see `_from_row`)."""
        return _from_row(cls, _POLICY_FIELDS, values)

    @property
    def issuer(self) -> str:
        return self.portal_name or self.org_id


@dataclass(frozen=True)
class ProjectedContact:
    contact_id: str
    org_id: str
    version: int = 0
    kind: str = ""
    display_name: str = ""
    email: str = ""
    portal_access: bool = False
    invitation_hash: str | None = None
    invitation_expires_at: datetime | None = None
    mfa_epoch: int = 0
    reset_event_id: uuid.UUID | None = None
    deleted: bool = False

    def evolve(self, event: ContactEvent) -> ProjectedContact:
        if _already_applied(self, event):
            return self
        row = list(self.__dict__.values())
        fold_contact(row, event)
        return _from_row(ProjectedContact, _CONTACT_FIELDS, row)

    def row(self) -> tuple[object, ...]:
        """The fields in declaration order (the projection table's column order)."""
        return tuple(self.__dict__.values())

    @classmethod
    def from_row(cls, values: Sequence[object]) -> ProjectedContact:
        """The inverse of `row` (see `_from_row`)."""
        return _from_row(cls, _CONTACT_FIELDS, values)


_POLICY_FIELDS = tuple(f.name for f in fields(OrgPolicy))
_CONTACT_FIELDS = tuple(f.name for f in fields(ProjectedContact))
# Where each field sits in `ProjectedContact.row()`, the contacts table's column order.
_AT = {name: i for i, name in enumerate(_CONTACT_FIELDS)}
_VERSION, _KIND, _DISPLAY_NAME, _EMAIL = (
    _AT["version"],
    _AT["kind"],
    _AT["display_name"],
    _AT["email"],
)
_PORTAL_ACCESS, _INVITATION_HASH = _AT["portal_access"], _AT["invitation_hash"]
_INVITATION_EXPIRES_AT, _MFA_EPOCH = _AT["invitation_expires_at"], _AT["mfa_epoch"]
_RESET_EVENT_ID, _DELETED = _AT["reset_event_id"], _AT["deleted"]
# A contact's fields after its id and org, before its first event.
_NEW_CONTACT_TAIL = tuple(f.default for f in fields(ProjectedContact)[2:])

# A contact's row: `ProjectedContact.row()` as a list, folded in place (`fold_contact`).
ContactRow = list[Any]


def new_contact_row(contact_id: str, org_id: str) -> ContactRow:
    """The row of `ProjectedContact(contact_id, org_id)`: a contact before its first event."""
    return [contact_id, org_id, *_NEW_CONTACT_TAIL]


def fold_contact(row: ContactRow, event: ContactEvent) -> None:
    """Apply one event to a contact's row in place: the one definition of the contact fold.

    `ProjectedContact.evolve` folds a copy through here; the projection folds its rows
    in place, without an immutable copy per event (a rebuild folds a million events). A
    duplicate changes nothing; an event beyond a gap raises `VersionGap`, as in `evolve`.
    """
    version: int = row[_VERSION]
    if event.aggregate_version <= version:
        return
    if event.aggregate_version != version + 1:
        raise VersionGap(
            f"{event.aggregate_type} {event.aggregate_id}: version {event.aggregate_version}"
            f" after {version}"
        )
    match event:
        case ContactCreated(payload=created):
            row[_KIND] = created.kind
            row[_DISPLAY_NAME] = created.display_name
            row[_EMAIL] = created.email.lower()
        case PortalAccessGranted(payload=granted):
            row[_PORTAL_ACCESS] = True
            row[_EMAIL] = granted.email.lower()
            row[_INVITATION_HASH] = granted.invitation_hash
            row[_INVITATION_EXPIRES_AT] = granted.expires_at
        case PortalAccessRevoked():
            row[_PORTAL_ACCESS] = False
            row[_INVITATION_HASH] = None
        case MfaReset():
            row[_MFA_EPOCH] = max(row[_MFA_EPOCH], event.payload.mfa_epoch)
            row[_RESET_EVENT_ID] = event.event_id
        case ContactDeleted():
            row[_DELETED] = True
            row[_PORTAL_ACCESS] = False
            row[_INVITATION_HASH] = None
        case ContactUnlocked():
            pass  # nothing the login decision reads; auth's reaction acts on it
    row[_VERSION] = event.aggregate_version


def _from_row(cls: type[_State], names: tuple[str, ...], values: Sequence[object]) -> _State:
    """An instance from its fields in declaration order.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`, about
    twice the cost of filling the instance dict; the projection reads a row back per
    applied event, and these classes validate nothing on construction.
    """
    state = object.__new__(cls)
    state.__dict__.update(zip(names, values, strict=True))
    return state


def _already_applied(
    state: OrgPolicy | ProjectedContact, event: PolicyEvent | ContactEvent
) -> bool:
    if event.aggregate_version <= state.version:
        return True
    if event.aggregate_version != state.version + 1:
        raise VersionGap(
            f"{event.aggregate_type} {event.aggregate_id}: version {event.aggregate_version}"
            f" after {state.version}"
        )
    return False


def _changed(state: _State, **changes: object) -> _State:
    """A copy with some fields changed.

    `dataclasses.replace` re-runs a frozen dataclass's `__init__` field by field; a rebuild
    folds every event of the log through here, so copy the instance dict instead (these
    classes validate nothing on construction, so nothing is skipped).
    """
    copy = object.__new__(type(state))
    copy.__dict__.update(state.__dict__, **changes)
    return copy

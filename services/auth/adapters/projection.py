"""auth's login-requirement projection: org policies and contacts, folded into PostgreSQL.

The tables live in their own PostgreSQL schema (with the consumed offsets beside them),
so a rebuild can fill a fresh schema from offset 0 and swap it in by renaming.
A batch is folded in memory per aggregate, then written with one statement per table.
Events beyond a version gap wait in `pending_events` (`held_events`), written in the same
transaction as the rows and offsets (DESIGN.md §11; the rule itself is `domain.gapless`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from services.auth.adapters import held_events
from services.auth.adapters.decision_memory import triggers_sql
from shared.contracts import (
    CONTACTS_EVENTS,
    PREFERENCES_EVENTS,
    ContactCreated,
    ContactDeleted,
    ContactUnlocked,
    Event,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    PortalAccessGranted,
    PortalAccessRevoked,
    PortalNameSet,
)
from shared.db import SCHEMA_LOCK
from shared.login_rule.gapless import HistoryIncomplete, in_order
from shared.login_rule.login_requirement import ActiveEnrollment, Held
from shared.login_rule.projected import (
    ContactEvent,
    ContactRow,
    OrgPolicy,
    PolicyEvent,
    ProjectedContact,
    fold_contact,
    new_contact_row,
)
from shared.projection_offsets import OFFSETS_SQL

TOPICS = (PREFERENCES_EVENTS, CONTACTS_EVENTS)
LIVE_SCHEMA = "login_projection"

_POLICY_COLUMNS = [f.name for f in fields(OrgPolicy)]
_CONTACT_COLUMNS = [f.name for f in fields(ProjectedContact)]
_CONTACT_VERSION = _CONTACT_COLUMNS.index("version")
# PostgreSQL types of the columns, in field order, for upserting a batch as arrays.
_POLICY_TYPES = ["text", "integer", "boolean", "text", "uuid"]
_CONTACT_TYPES = [
    "text", "text", "integer", "text", "text", "text",
    "boolean", "text", "timestamptz", "integer", "uuid", "boolean",
]  # fmt: skip


POLICY, CONTACT = "org_preferences", "contact"  # aggregate types, as stored with held events
# Routed by the event's class, not by the envelope's `aggregate_type` (a sender's claim).
_KIND: dict[type[Event], str] = {
    **dict.fromkeys([MfaPolicyEnabled, MfaPolicyDisabled, PortalNameSet], POLICY),
    **dict.fromkeys(
        [
            ContactCreated,
            PortalAccessGranted,
            PortalAccessRevoked,
            MfaReset,
            ContactDeleted,
            ContactUnlocked,
        ],
        CONTACT,
    ),
}


def schema_sql(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.org_policies (
    org_id          text PRIMARY KEY,
    version         integer NOT NULL,
    mfa_enabled     boolean NOT NULL,
    portal_name     text,
    policy_event_id uuid
);
CREATE TABLE IF NOT EXISTS {schema}.contacts (
    contact_id            text PRIMARY KEY,
    org_id                text NOT NULL,
    version               integer NOT NULL,
    kind                  text NOT NULL,
    display_name          text NOT NULL,
    email                 text NOT NULL,
    portal_access         boolean NOT NULL,
    invitation_hash       text,
    invitation_expires_at timestamptz,
    mfa_epoch             integer NOT NULL,
    reset_event_id        uuid,
    deleted               boolean NOT NULL
);
{held_events.pending_sql(schema)}
{OFFSETS_SQL.replace("projection_offsets", f"{schema}.projection_offsets")}
"""


def lookup_indexes_sql(schema: str) -> str:
    """The indexes login needs; a rebuild adds them after it has caught up (cheaper)."""
    return f"""
CREATE INDEX IF NOT EXISTS contacts_by_email ON {schema}.contacts (org_id, email);
CREATE INDEX IF NOT EXISTS contacts_by_invitation ON {schema}.contacts (invitation_hash);
"""


def _checked(schema: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"not a schema name: {schema!r}")
    return schema


@dataclass(frozen=True)
class Standing:
    """What the login decision reads: the policy, the contact (if in this org), what waits."""

    policy: OrgPolicy
    contact: ProjectedContact | None
    held: Held
    # Read only when asked for (`with_enrollment`): None otherwise, or when there is none.
    enrollment: ActiveEnrollment | None = None


class LoginProjection:
    """Implements `shared.projection.Projection` for the login-requirement read model."""

    def __init__(self, schema: str = LIVE_SCHEMA) -> None:
        self.schema = _checked(schema)
        self.name = "login_requirement"
        self.offsets_table = f"{self.schema}.projection_offsets"

    async def create(self, conn: asyncpg.Connection, *, lookup_indexes: bool = True) -> None:
        async with conn.transaction():
            # One replica at a time: CREATE OR REPLACE FUNCTION races with itself.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(schema_sql(self.schema))
            if self.schema == LIVE_SCHEMA:
                # Not on a rebuild's fresh schema: its million rows need no trigger calls;
                # the swap adds them (services/auth/entrypoints/rebuild.py).
                await conn.execute(triggers_sql(self.schema, live_schema=LIVE_SCHEMA))
        if lookup_indexes:
            await self.create_lookup_indexes(conn)

    async def create_lookup_indexes(self, conn: asyncpg.Connection) -> None:
        await conn.execute(lookup_indexes_sql(self.schema))

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        await self.apply_in_order(conn, events)

    async def apply_in_order(
        self, conn: asyncpg.Connection, events: Sequence[Event]
    ) -> list[Event]:
        """Apply what continues each aggregate's stream; hold what lies beyond a gap.

        Returns the events applied, each aggregate's in version order (held ones that
        now fit included): what auth's reactions may act on, and nothing else.
        """
        by_org, by_contact = _by_aggregate(events)
        held = await held_events.held_for(conn, self.schema, [*by_org, *by_contact])
        held_orgs, held_contacts = _by_aggregate(held)
        changes = held_events.HeldChanges(self.schema)
        applied: list[Event] = []
        if by_org:
            applied += await self._apply_policies(conn, by_org, held_orgs, changes)
        if by_contact:
            applied += await self._apply_contacts(conn, by_contact, held_contacts, changes)
        if changes.hold or changes.unhold:
            await held_events.store(conn, changes)
        return applied

    async def _apply_policies(
        self,
        conn: asyncpg.Connection,
        by_org: dict[str, list[PolicyEvent]],
        held: dict[str, list[PolicyEvent]],
        changes: held_events.HeldChanges,
    ) -> list[PolicyEvent]:
        current = {p.org_id: p for p in await self.policies(conn, list(by_org))}
        changed: list[tuple[object, ...]] = []
        applied: list[PolicyEvent] = []
        for org_id, events in by_org.items():
            before = current.get(org_id) or OrgPolicy(org_id)
            step = in_order(before.version, held.get(org_id, ()), events)
            after = before
            for event in step.applicable:
                after = after.evolve(event)
            if step.held or step.unheld:
                changes.note(POLICY, org_id, (before.version, after.version), step)
            if step.applicable:
                changed.append(after.row())
                applied += step.applicable
        await _upsert(conn, f"{self.schema}.org_policies", _POLICY_COLUMNS, _POLICY_TYPES, changed)
        return applied

    async def _apply_contacts(
        self,
        conn: asyncpg.Connection,
        by_contact: dict[str, list[ContactEvent]],
        held: dict[str, list[ContactEvent]],
        changes: held_events.HeldChanges,
    ) -> list[ContactEvent]:
        # Rows folded in place, not a `ProjectedContact` copied per event: the same fold
        # (`fold_contact`), without an object per read-back row and a copy per event.
        current = {row[0]: row for row in await self._contact_rows(conn, list(by_contact))}
        changed: list[ContactRow] = []
        applied: list[ContactEvent] = []
        for contact_id, events in by_contact.items():
            row = current.get(contact_id)
            version: int = row[_CONTACT_VERSION] if row is not None else 0
            step = in_order(version, held.get(contact_id, ()), events)
            if step.held or step.unheld:
                applied_to = version + len(step.applicable)
                changes.note(CONTACT, contact_id, (version, applied_to), step)
            if not step.applicable:
                continue
            if row is None:
                # A new contact's org is that of its first event, version 1.
                row = new_contact_row(contact_id, step.applicable[0].org_id)
            for event in step.applicable:
                fold_contact(row, event)
            changed.append(row)
            applied += step.applicable
        await _upsert(conn, f"{self.schema}.contacts", _CONTACT_COLUMNS, _CONTACT_TYPES, changed)
        return applied

    # --- reads ----------------------------------------------------------------------------

    async def policies(self, conn: asyncpg.Connection, org_ids: list[str]) -> list[OrgPolicy]:
        rows = await conn.fetch(
            f"SELECT {', '.join(_POLICY_COLUMNS)} FROM {self.schema}.org_policies"
            " WHERE org_id = ANY($1::text[])",
            org_ids,
        )
        return [OrgPolicy.from_row(r) for r in rows]

    async def policy(self, conn: asyncpg.Connection, org_id: str) -> OrgPolicy:
        found = await self.policies(conn, [org_id])
        return found[0] if found else OrgPolicy(org_id)

    async def contacts(
        self, conn: asyncpg.Connection, contact_ids: list[str]
    ) -> list[ProjectedContact]:
        return [ProjectedContact.from_row(r) for r in await self._contact_rows(conn, contact_ids)]

    async def _contact_rows(
        self, conn: asyncpg.Connection, contact_ids: list[str]
    ) -> list[ContactRow]:
        rows = await conn.fetch(
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM {self.schema}.contacts"
            " WHERE contact_id = ANY($1::text[])",
            contact_ids,
        )
        return [list(r) for r in rows]

    async def contact_by_email(
        self, conn: asyncpg.Connection, org_id: str, email: str
    ) -> ProjectedContact | None:
        """A live contact with portal access, by its login email."""
        row = await conn.fetchrow(
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM {self.schema}.contacts"
            " WHERE org_id = $1 AND email = $2 AND portal_access AND NOT deleted",
            org_id,
            email.lower(),
        )
        return ProjectedContact(*row) if row else None

    async def contact_by_invitation(
        self, conn: asyncpg.Connection, org_id: str, invitation_hash: str
    ) -> ProjectedContact | None:
        """Raises HistoryIncomplete while the contact's stream waits beyond a gap."""
        row = await conn.fetchrow(
            f"SELECT {', '.join(_CONTACT_COLUMNS)}, {self._waiting_column} FROM"
            f" {self.schema}.contacts c WHERE org_id = $1 AND invitation_hash = $2"
            " AND portal_access AND NOT deleted",
            org_id,
            invitation_hash,
        )
        return _complete_contact(row)

    async def contact(
        self, conn: asyncpg.Connection, org_id: str, contact_id: str
    ) -> ProjectedContact | None:
        """The contact, only if it belongs to this org: another org's ids reveal nothing.

        Raises HistoryIncomplete while the contact's stream waits beyond a gap: whatever
        waits (a revoke, a reset) might end what the caller is about to grant.
        """
        row = await conn.fetchrow(
            f"SELECT {', '.join(_CONTACT_COLUMNS)}, {self._waiting_column} FROM"
            f" {self.schema}.contacts c WHERE contact_id = $1 AND org_id = $2",
            contact_id,
            org_id,
        )
        return _complete_contact(row)

    @property
    def _waiting_column(self) -> str:
        return (
            f"EXISTS (SELECT 1 FROM {self.schema}.pending_events h"
            f" WHERE h.aggregate_id = c.contact_id AND h.aggregate_type = '{CONTACT}')"
        )

    async def standing(
        self,
        conn: asyncpg.Connection,
        org_id: str,
        contact_id: str,
        *,
        with_enrollment: bool = False,
    ) -> Standing:
        """The login decision's inputs, in one query: policy, contact and what waits, and
        with `with_enrollment` the contact's active enrollment from auth's own table (one
        round trip per lookup instead of two: the lookup is the hottest read there is).

        Held contact events count only for a contact of this org, or for an unknown one
        if they claim this org: another org's ids reveal nothing here either.
        """
        policy_columns = ", ".join(f"p.{c}" for c in _POLICY_COLUMNS)
        contact_columns = ", ".join(f"c.{c}" for c in _CONTACT_COLUMNS)
        held = f"{self.schema}.pending_events h"
        enrollment_columns, enrollment_join = "", ""
        if with_enrollment:
            # The latest enabled enrollment, as enrollments.enabled_for picks it.
            enrollment_columns = ", e.enrollment_id, e.mfa_epoch, e.enrolled_event_id"
            enrollment_join = (
                " LEFT JOIN LATERAL (SELECT enrollment_id, mfa_epoch, enrolled_event_id"
                "  FROM enrollments WHERE contact_id = $2 AND status = 'enabled'"
                "  ORDER BY enabled_at DESC LIMIT 1) e ON true"
            )
        row = await conn.fetchrow(
            f"SELECT {policy_columns}, {contact_columns},"
            f" ARRAY(SELECT h.version FROM {held} WHERE h.aggregate_id = $1"
            f"  AND h.aggregate_type = '{POLICY}' ORDER BY h.version),"
            f" ARRAY(SELECT h.version FROM {held} WHERE h.aggregate_id = $2"
            f"  AND h.aggregate_type = '{CONTACT}' AND COALESCE(c.org_id, h.org_id) = $1"
            f"  ORDER BY h.version){enrollment_columns}"
            f" FROM (VALUES (1)) AS one"
            f" LEFT JOIN {self.schema}.org_policies p ON p.org_id = $1"
            f" LEFT JOIN {self.schema}.contacts c ON c.contact_id = $2{enrollment_join}",
            org_id,
            contact_id,
        )
        assert row is not None  # one row, always: the joins are outer
        values = tuple(row)
        policy_end = len(_POLICY_COLUMNS)
        contact_end = policy_end + len(_CONTACT_COLUMNS)
        policy = OrgPolicy(*values[:policy_end]) if values[0] is not None else OrgPolicy(org_id)
        contact = (
            ProjectedContact(*values[policy_end:contact_end])
            if values[policy_end] is not None and values[policy_end + 1] == org_id
            else None
        )
        held_policy, held_contact = values[contact_end], values[contact_end + 1]
        enrollment: ActiveEnrollment | None = None
        if with_enrollment and contact is not None:
            enrollment_id, epoch, enrolled_event_id = values[contact_end + 2 :]
            if enrollment_id is not None and enrolled_event_id is not None:
                enrollment = ActiveEnrollment(enrollment_id, epoch, enrolled_event_id)
        return Standing(
            policy,
            contact,
            Held(policy=tuple(held_policy), contact=tuple(held_contact)),
            enrollment,
        )

    async def waiting(self, conn: asyncpg.Connection) -> held_events.Waiting:
        """How many aggregates wait on a version gap, holding how many events."""
        return await held_events.waiting(conn, self.schema)


def _complete_contact(row: asyncpg.Record | None) -> ProjectedContact | None:
    if row is None:
        return None
    *values, waiting = tuple(row)
    if waiting:
        raise HistoryIncomplete(f"contact {values[0]} waits beyond a version gap")
    return ProjectedContact(*values)


def _by_aggregate(
    events: Sequence[Event],
) -> tuple[dict[str, list[PolicyEvent]], dict[str, list[ContactEvent]]]:
    by_org: dict[str, list[Any]] = {}
    by_contact: dict[str, list[Any]] = {}
    by_kind = {POLICY: by_org, CONTACT: by_contact}
    for event in events:
        # One dict lookup per event (a rebuild routes a million of them).
        kind = _KIND.get(type(event))
        if kind is not None:
            by_kind[kind].setdefault(event.aggregate_id, []).append(event)
    return by_org, by_contact


async def _upsert(
    conn: asyncpg.Connection,
    table: str,
    columns: list[str],
    types: list[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Insert or replace whole rows: the batch goes as one array per column, in one statement.

    One statement per batch instead of one per row is most of a rebuild's speed.
    """
    if not rows:
        return
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}",
        *(list(column) for column in zip(*rows, strict=True)),
    )

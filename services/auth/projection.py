"""auth's login-requirement projection: org policies and contacts, folded into PostgreSQL.

The tables live in their own PostgreSQL schema (with the consumed offsets beside them),
so a rebuild can fill a fresh schema from offset 0 and swap it in by renaming.
A batch is folded in memory per aggregate, then written with one statement per table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields

import asyncpg

from services.auth.domain.projected import ContactEvent, OrgPolicy, PolicyEvent, ProjectedContact
from shared.events import CONTACTS_EVENTS, PREFERENCES_EVENTS, Event
from shared.projection_offsets import OFFSETS_SQL

TOPICS = (PREFERENCES_EVENTS, CONTACTS_EVENTS)
LIVE_SCHEMA = "login_projection"

_POLICY_COLUMNS = [f.name for f in fields(OrgPolicy)]
_CONTACT_COLUMNS = [f.name for f in fields(ProjectedContact)]
# PostgreSQL types of the columns, in field order, for upserting a batch as arrays.
_POLICY_TYPES = ["text", "integer", "boolean", "text", "uuid"]
_CONTACT_TYPES = [
    "text", "text", "integer", "text", "text", "text",
    "boolean", "text", "timestamptz", "integer", "uuid", "boolean",
]  # fmt: skip


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


class LoginProjection:
    """Implements `shared.projection.Projection` for the login-requirement read model."""

    def __init__(self, schema: str = LIVE_SCHEMA) -> None:
        self.schema = _checked(schema)
        self.name = "login_requirement"
        self.offsets_table = f"{self.schema}.projection_offsets"

    async def create(self, conn: asyncpg.Connection, *, lookup_indexes: bool = True) -> None:
        await conn.execute(schema_sql(self.schema))
        if lookup_indexes:
            await self.create_lookup_indexes(conn)

    async def create_lookup_indexes(self, conn: asyncpg.Connection) -> None:
        await conn.execute(lookup_indexes_sql(self.schema))

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        policy_events: dict[str, list[PolicyEvent]] = {}
        contact_events: dict[str, list[ContactEvent]] = {}
        for event in events:
            match event.aggregate_type:
                case "org_preferences":
                    policy_events.setdefault(event.aggregate_id, []).append(event)  # type: ignore[arg-type]
                case "contact":
                    contact_events.setdefault(event.aggregate_id, []).append(event)  # type: ignore[arg-type]
        if policy_events:
            await self._apply_policies(conn, policy_events)
        if contact_events:
            await self._apply_contacts(conn, contact_events)

    async def _apply_policies(
        self, conn: asyncpg.Connection, by_org: dict[str, list[PolicyEvent]]
    ) -> None:
        current = {p.org_id: p for p in await self.policies(conn, list(by_org))}
        changed = []
        for org_id, events in by_org.items():
            before = current.get(org_id, OrgPolicy(org_id))
            after = before
            for event in events:
                after = after.evolve(event)
            if after != before:
                changed.append(after.row())
        await _upsert(conn, f"{self.schema}.org_policies", _POLICY_COLUMNS, _POLICY_TYPES, changed)

    async def _apply_contacts(
        self, conn: asyncpg.Connection, by_contact: dict[str, list[ContactEvent]]
    ) -> None:
        current = {c.contact_id: c for c in await self.contacts(conn, list(by_contact))}
        changed = []
        for contact_id, events in by_contact.items():
            before = current.get(contact_id, ProjectedContact(contact_id, events[0].org_id))
            after = before
            for event in events:
                after = after.evolve(event)
            if after != before:
                changed.append(after.row())
        await _upsert(conn, f"{self.schema}.contacts", _CONTACT_COLUMNS, _CONTACT_TYPES, changed)

    # --- reads ----------------------------------------------------------------------------

    async def policies(self, conn: asyncpg.Connection, org_ids: list[str]) -> list[OrgPolicy]:
        rows = await conn.fetch(
            f"SELECT {', '.join(_POLICY_COLUMNS)} FROM {self.schema}.org_policies"
            " WHERE org_id = ANY($1::text[])",
            org_ids,
        )
        return [OrgPolicy(*r) for r in rows]

    async def policy(self, conn: asyncpg.Connection, org_id: str) -> OrgPolicy:
        found = await self.policies(conn, [org_id])
        return found[0] if found else OrgPolicy(org_id)

    async def contacts(
        self, conn: asyncpg.Connection, contact_ids: list[str]
    ) -> list[ProjectedContact]:
        rows = await conn.fetch(
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM {self.schema}.contacts"
            " WHERE contact_id = ANY($1::text[])",
            contact_ids,
        )
        return [ProjectedContact(*r) for r in rows]

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
        row = await conn.fetchrow(
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM {self.schema}.contacts"
            " WHERE org_id = $1 AND invitation_hash = $2 AND portal_access AND NOT deleted",
            org_id,
            invitation_hash,
        )
        return ProjectedContact(*row) if row else None

    async def contact(
        self, conn: asyncpg.Connection, org_id: str, contact_id: str
    ) -> ProjectedContact | None:
        """The contact, only if it belongs to this org: another org's ids reveal nothing."""
        found = await self.contacts(conn, [contact_id])
        return found[0] if found and found[0].org_id == org_id else None


async def _upsert(
    conn: asyncpg.Connection,
    table: str,
    columns: list[str],
    types: list[str],
    rows: list[tuple[object, ...]],
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

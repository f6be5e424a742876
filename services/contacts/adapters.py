"""contacts' storage: the contact's stream in the event store, and the contact directory
(the org's list and the one-email-per-contact index) written beside it in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.contacts.domain import Contact
from shared.contracts import EventEnvelope
from shared.eventstore import append_events, load_stream

_DIRECTORY_COLUMNS = (
    "contact_id, org_id, kind, display_name, email, portal_access, mfa_epoch, deleted, version"
)


async def load_contact(conn: asyncpg.Connection, contact_id: str) -> Contact:
    return Contact.from_events(contact_id, await load_stream(conn, "contact", contact_id))


async def append(conn: asyncpg.Connection, events: Sequence[EventEnvelope]) -> None:
    """The events, and their outbox rows, in the caller's transaction."""
    await append_events(conn, events)


async def listed_contacts(conn: asyncpg.Connection, org_id: str) -> list[dict[str, Any]]:
    """The org's contacts as the directory lists them, by name; the deleted left out."""
    rows = await conn.fetch(
        f"SELECT {_DIRECTORY_COLUMNS} FROM contact_directory"
        " WHERE org_id = $1 AND NOT deleted ORDER BY display_name, contact_id",
        org_id,
    )
    hidden = ("deleted", "version")
    return [{k: v for k, v in dict(row).items() if k not in hidden} for row in rows]


async def email_taken(conn: asyncpg.Connection, org_id: str, email: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM contact_directory"
        " WHERE org_id = $1 AND lower(email) = lower($2) AND NOT deleted",
        org_id,
        email,
    )
    return found is not None


async def write_directory(conn: asyncpg.Connection, c: Contact) -> None:
    """The contact's directory row as the contact now is. A concurrent create with the
    same email fails here on the unique index (asyncpg.UniqueViolationError)."""
    await conn.execute(
        f"INSERT INTO contact_directory ({_DIRECTORY_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (contact_id) DO UPDATE SET"
        " portal_access = EXCLUDED.portal_access, mfa_epoch = EXCLUDED.mfa_epoch,"
        " deleted = EXCLUDED.deleted, version = EXCLUDED.version",
        c.contact_id,
        c.org_id,
        c.kind,
        c.display_name,
        c.email,
        c.portal_access,
        c.mfa_epoch,
        c.deleted,
        c.version,
    )

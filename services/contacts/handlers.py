"""contacts: commands in, contact events out; every command is checked against its org.

The admin reads (a contact, the org's list) are HTTP routes beside this (reads.py); the
command replies carry ids and status only, since every reader of the reply topic sees them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, assert_never

import asyncpg

from services.contacts.domain import Contact, ContactRejected
from shared.admin_identity import AdminAssertion
from shared.command_handling import CommandOwner
from shared.commands import (
    CONTACTS_COMMAND_ADAPTER,
    CommandReply,
    ContactCommand,
    ContactsCommand,
    CreateContact,
    DeleteContact,
    GrantPortalAccess,
    ResetPortalMfa,
    RevokePortalAccess,
    UnlockContact,
)
from shared.events import Cause
from shared.eventstore import append_events, load_stream
from shared.read_your_writes import WritePosition

_DIRECTORY_COLUMNS = (
    "contact_id, org_id, kind, display_name, email, portal_access, mfa_epoch, deleted, version"
)


class ContactsService(CommandOwner):
    commands = CONTACTS_COMMAND_ADAPTER

    async def contacts(self, org_id: str) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_DIRECTORY_COLUMNS} FROM contact_directory"
                " WHERE org_id = $1 AND NOT deleted ORDER BY display_name, contact_id",
                org_id,
            )
        return [_view(dict(r)) for r in rows]

    async def contact(self, org_id: str, contact_id: str) -> dict[str, Any] | None:
        """The contact, or None when it does not exist in this org (another org's is None)."""
        async with self._pool.acquire() as conn:
            contact = await _load(conn, contact_id)
        if not contact.exists or contact.org_id != org_id:
            return None
        return _contact_view(contact)

    async def _change(
        self, conn: asyncpg.Connection, command: ContactsCommand, admin: AdminAssertion
    ) -> CommandReply:
        contact = await _load(conn, command.contact_id)
        if not isinstance(command, CreateContact) and (
            not contact.exists or contact.org_id != command.org_id
        ):
            # Another org's contact is answered exactly like a missing one.
            return _not_found(command)
        cause = command.cause(self._clock(), admin.sub)
        if isinstance(command, CreateContact) and await _email_taken(
            conn, command.org_id, command.email
        ):
            # The reply names no email: the admin who sent it knows which one it was.
            return CommandReply.rejected(
                command.command_id, "conflict", "that email already belongs to a contact"
            )
        try:
            events = self._decide(contact, command, cause)
        except ContactRejected as exc:
            return CommandReply.rejected(command.command_id, exc.code, str(exc))  # type: ignore[arg-type]
        await append_events(conn, events)
        for event in events:
            contact = contact.apply(event)
        # A concurrent create with the same email fails on the unique index here; the retry
        # then sees the email taken and rejects.
        await _write_directory(conn, contact)
        return CommandReply.accepted(
            command.command_id,
            _contact_status(contact),
            WritePosition("contact", contact.contact_id, contact.version),
        )

    @staticmethod
    def _decide(contact: Contact, command: ContactsCommand, cause: Cause) -> list[Any]:
        match command:
            case CreateContact():
                return contact.create(
                    command.org_id, command.kind, command.display_name, command.email, cause
                )
            case GrantPortalAccess():
                return contact.grant_portal_access(
                    command.invitation_hash, timedelta(seconds=command.valid_for_s), cause
                )
            case RevokePortalAccess():
                return contact.revoke_portal_access(cause)
            case ResetPortalMfa():
                return contact.reset_mfa(command.reason, cause)
            case UnlockContact():
                return contact.unlock(command.reason, cause)
            case DeleteContact():
                return contact.delete(cause)
        assert_never(command)


async def _email_taken(conn: asyncpg.Connection, org_id: str, email: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM contact_directory"
        " WHERE org_id = $1 AND lower(email) = lower($2) AND NOT deleted",
        org_id,
        email,
    )
    return found is not None


async def _load(conn: asyncpg.Connection, contact_id: str) -> Contact:
    return Contact.from_events(contact_id, await load_stream(conn, "contact", contact_id))


async def _write_directory(conn: asyncpg.Connection, c: Contact) -> None:
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


def _not_found(command: ContactCommand) -> CommandReply:
    return CommandReply.rejected(
        command.command_id,
        "not_found",
        f"no contact {command.contact_id} in org {command.org_id}",
    )


def _contact_status(c: Contact) -> dict[str, Any]:
    """What a command reply may say: ids and status, no name or email."""
    return {
        "contact_id": c.contact_id,
        "portal_access": c.portal_access,
        "invitation_expires_at": c.invitation_expires_at.isoformat()
        if c.invitation_expires_at
        else None,
        "mfa_epoch": c.mfa_epoch,
        "deleted": c.deleted,
    }


def _contact_view(c: Contact) -> dict[str, Any]:
    return {
        "contact_id": c.contact_id,
        "org_id": c.org_id,
        "kind": c.kind,
        "display_name": c.display_name,
        "email": c.email,
        "portal_access": c.portal_access,
        "invitation_expires_at": c.invitation_expires_at.isoformat()
        if c.invitation_expires_at
        else None,
        "mfa_epoch": c.mfa_epoch,
    }


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in row if k not in ("deleted", "version")}

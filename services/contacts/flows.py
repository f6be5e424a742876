"""contacts' use cases: every command checked against its org; the admin reads.

The command replies carry ids and status only, since every reader of the reply topic sees
them; the reads (a contact, the org's list) answer the admin over HTTP (entrypoints).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, assert_never

import asyncpg

from services.contacts.adapters import (
    append,
    email_taken,
    listed_contacts,
    load_contact,
    write_directory,
)
from services.contacts.domain import Contact, ContactRejected
from shared.admin_identity import AdminAssertion
from shared.command_handling import CommandOwner
from shared.contracts import (
    CONTACTS_COMMAND_ADAPTER,
    Cause,
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
from shared.read_your_writes import WritePosition


class ContactsService(CommandOwner):
    commands = CONTACTS_COMMAND_ADAPTER

    async def contacts(self, org_id: str) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn:
            return await listed_contacts(conn, org_id)

    async def contact(self, org_id: str, contact_id: str) -> dict[str, Any] | None:
        """The contact, or None when it does not exist in this org (another org's is None)."""
        async with self._pool.acquire() as conn:
            contact = await load_contact(conn, contact_id)
        if not contact.exists or contact.org_id != org_id:
            return None
        return _contact_view(contact)

    async def _change(
        self, conn: asyncpg.Connection, command: ContactsCommand, admin: AdminAssertion
    ) -> CommandReply:
        contact = await load_contact(conn, command.contact_id)
        if not isinstance(command, CreateContact) and (
            not contact.exists or contact.org_id != command.org_id
        ):
            # Another org's contact is answered exactly like a missing one.
            return _not_found(command)
        cause = command.cause(self._clock(), admin.sub)
        if isinstance(command, CreateContact) and await email_taken(
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
        await append(conn, events)
        for event in events:
            contact = contact.apply(event)
        # A concurrent create with the same email fails on the unique index here; the retry
        # then sees the email taken and rejects.
        await write_directory(conn, contact)
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

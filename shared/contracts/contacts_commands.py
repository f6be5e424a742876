"""portal.contacts.commands (key: contact_id): a contact, its portal access, its MFA."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, EmailStr, Field, TypeAdapter

from shared.contracts.commands import Command
from shared.contracts.contacts_events import ContactKind
from shared.contracts.topics import CONTACTS_COMMANDS


class ContactCommand(Command):
    topic: ClassVar[str] = CONTACTS_COMMANDS
    contact_id: str = Field(min_length=1, max_length=100)

    def target_id(self) -> str:
        return self.contact_id


class CreateContact(ContactCommand):
    command_type: Literal["CreateContact"] = "CreateContact"
    contact_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=100)
    kind: ContactKind
    display_name: str = Field(min_length=1, max_length=200)
    email: EmailStr


class GrantPortalAccess(ContactCommand):
    """Carries only the invitation token's hash: the console that made the token shows it.

    So the token never crosses Kafka and is never stored, not even in a reply.
    """

    command_type: Literal["GrantPortalAccess"] = "GrantPortalAccess"
    invitation_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    valid_for_s: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)


class RevokePortalAccess(ContactCommand):
    command_type: Literal["RevokePortalAccess"] = "RevokePortalAccess"


class ResetPortalMfa(ContactCommand):
    command_type: Literal["ResetPortalMfa"] = "ResetPortalMfa"
    reason: str = Field(default="", max_length=500)


class UnlockContact(ContactCommand):
    """Lift the contact's login limits now: the second-factor lock and failed passwords."""

    command_type: Literal["UnlockContact"] = "UnlockContact"
    reason: str = Field(default="", max_length=500)


class DeleteContact(ContactCommand):
    command_type: Literal["DeleteContact"] = "DeleteContact"


ContactsCommand = Annotated[
    CreateContact
    | GrantPortalAccess
    | RevokePortalAccess
    | ResetPortalMfa
    | UnlockContact
    | DeleteContact,
    Field(discriminator="command_type"),
]
CONTACTS_COMMAND_ADAPTER: TypeAdapter[ContactsCommand] = TypeAdapter(
    ContactsCommand, config=ConfigDict(defer_build=True)
)

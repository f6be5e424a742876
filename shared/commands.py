"""Commands the admin console sends, and the replies the owning service returns.

A command is imperative and names its target; the client generates `command_id`, so a
retried command is recognised and answered with the reply stored the first time. Who sends
it is not a field: it carries an admin assertion (shared.admin_identity), whose `sub` the
service takes as the actor once it has verified it. Replies carry ids and status only:
everyone who reads the reply topic sees them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter

from shared.admin_identity import MAX_TOKEN_CHARS, AssertionIssuer, canonical_digest
from shared.events import CONTACTS_COMMANDS, PREFERENCES_COMMANDS, Cause, ContactKind
from shared.read_your_writes import WritePosition

ASSERTION_FIELD = "assertion"


class Command(BaseModel):
    # Built when first used (as the events are, shared.events): the CLI uses one command.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    command_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    org_id: str = Field(min_length=1, max_length=100)
    correlation_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    # The admin assertion (a JWT); empty is refused by the service as unauthenticated.
    assertion: str = Field(
        default="",
        max_length=MAX_TOKEN_CHARS,
        repr=False,
        description="Admin assertion (JWT, EdDSA): iss, sub, org, scope, exp, iat, jti, and"
        " cmd = SHA-256 of this command as canonical JSON without this field.",
    )

    def target_id(self) -> str:
        return self.org_id

    def digest(self) -> str:
        """What an assertion made for this command carries as `cmd`.

        The same as `wire_digest` of the JSON this command is sent as, so the service can
        check it before it parses anything.
        """
        return canonical_digest(self.model_dump(mode="json", exclude={ASSERTION_FIELD}))

    def content_digest(self) -> str:
        """What makes two sends the same command: everything but how it was sent.

        A retry under the same `command_id` (the idempotency key) may carry a new assertion
        and correlation id; any other difference makes it a different command.
        """
        return canonical_digest(
            self.model_dump(mode="json", exclude={ASSERTION_FIELD, "correlation_id"})
        )

    def signed(self, assertion: str) -> Self:
        return self.model_copy(update={ASSERTION_FIELD: assertion})

    def signed_by(self, issuer: AssertionIssuer, sub: str) -> Self:
        """Signed with an assertion minted for exactly this command."""
        return self.signed(issuer.mint(sub=sub, org=self.org_id, cmd=self.digest()).token)

    def cause(self, at: datetime, actor: str) -> Cause:
        """What the events this command causes carry: the verified actor, correlation, id."""
        return Cause(
            actor=actor,
            at=at,
            correlation_id=self.correlation_id,
            causation_id=str(self.command_id),
        )


def wire_digest(raw: dict[str, Any]) -> str:
    """The digest of a command as received (a JSON object), its assertion left out."""
    return canonical_digest({k: v for k, v in raw.items() if k != ASSERTION_FIELD})


# --- portal.preferences.commands (key: org_id) ---------------------------------------------


class EnableMfaPolicy(Command):
    command_type: Literal["EnableMfaPolicy"] = "EnableMfaPolicy"


class DisableMfaPolicy(Command):
    command_type: Literal["DisableMfaPolicy"] = "DisableMfaPolicy"


class SetPortalName(Command):
    command_type: Literal["SetPortalName"] = "SetPortalName"
    portal_name: str = Field(min_length=1, max_length=200)


PreferencesCommand = Annotated[
    EnableMfaPolicy | DisableMfaPolicy | SetPortalName,
    Field(discriminator="command_type"),
]
PREFERENCES_COMMAND_ADAPTER: TypeAdapter[PreferencesCommand] = TypeAdapter(
    PreferencesCommand, config=ConfigDict(defer_build=True)
)


# --- portal.contacts.commands (key: contact_id) --------------------------------------------


class ContactCommand(Command):
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


# --- replies --------------------------------------------------------------------------------

RejectionCode = Literal[
    "invalid", "not_found", "wrong_org", "conflict", "internal", "unauthenticated", "forbidden"
]


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    code: RejectionCode
    message: str


class CommandReply(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    command_id: uuid.UUID | None
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    rejection: Rejection | None = None
    replied_at: datetime | None = None

    @classmethod
    def accepted(
        cls, command_id: uuid.UUID, result: dict[str, Any], position: WritePosition | None = None
    ) -> CommandReply:
        """`position`: where the command left its aggregate, so a reader can wait for it
        (`min_position`, shared.read_your_writes)."""
        if position is not None:
            result = {**result, "position": position.token()}
        return cls(command_id=command_id, ok=True, result=result)

    @classmethod
    def rejected(
        cls, command_id: uuid.UUID | None, code: RejectionCode, message: str
    ) -> CommandReply:
        return cls(command_id=command_id, ok=False, rejection=Rejection(code=code, message=message))


def command_topic(command: Command) -> str:
    if isinstance(command, ContactCommand):
        return CONTACTS_COMMANDS
    return PREFERENCES_COMMANDS

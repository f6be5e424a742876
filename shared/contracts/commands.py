"""What every command the admin console sends carries (shared.contracts.replies: the reply).

A command is imperative and names its target; the client generates `command_id`, so a
retried command is recognised and answered with the reply stored the first time. Who sends
it is not a field: it carries an admin assertion (shared.admin_identity), whose `sub` the
service takes as the actor once it has verified it. Replies carry ids and status only:
everyone who reads the reply topic sees them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from shared.admin_identity import MAX_TOKEN_CHARS, AssertionIssuer, canonical_digest
from shared.contracts.envelope import Cause

ASSERTION_FIELD = "assertion"


class Command(BaseModel):
    # Built when first used (as the events are, shared.contracts.envelope): the CLI uses one.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    # The command topic of the service that owns what the command changes.
    topic: ClassVar[str]

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


def command_topic(command: Command) -> str:
    return command.topic

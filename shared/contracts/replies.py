"""The reply a command-owning service returns on portal.admin.replies.

Replies carry ids and status only: everyone who reads the reply topic sees them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.read_your_writes import WritePosition

RejectionCode = Literal[
    "invalid", "not_found", "wrong_org", "conflict", "internal", "unauthenticated", "forbidden"
]


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use

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

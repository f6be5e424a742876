"""Running a command exactly once, and only on a verified admin's word.

Admission comes first: the admin assertion is verified against the command as received
(its org, its digest) before the command is parsed or anything is read or written. Then
its events, its reply and the assertion's `jti` commit in one transaction. A redelivered
or retried command (same `command_id`) gets the reply stored the first time and appends
nothing; an assertion already spent on another command is refused. A lost
optimistic-concurrency race is retried from a fresh load.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import asyncpg
from pydantic import TypeAdapter, ValidationError

from shared.admin_identity import AdminAssertion, AssertionRejected, AssertionVerifier
from shared.contracts import ASSERTION_FIELD, Command, CommandReply, wire_digest
from shared.eventstore import ConcurrencyConflict

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)
CommandHandler = Callable[[asyncpg.Connection, Any, AdminAssertion], Awaitable[CommandReply]]
_ATTEMPTS = 5


@dataclass(frozen=True)
class Admitted(Generic[C]):
    command: C
    admin: AdminAssertion


def admit(
    adapter: TypeAdapter[Any], verifier: AssertionVerifier, body: bytes
) -> Admitted[Command] | CommandReply:
    """The command and its verified admin, or a rejection naming what is wrong.

    A rejection never echoes values: not the token, not a field.
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return CommandReply.rejected(None, "unauthenticated", "command is not JSON")
    if not isinstance(raw, dict):
        return CommandReply.rejected(None, "unauthenticated", "command is not a JSON object")
    command_id = _uuid_or_none(raw.get("command_id"))
    token = raw.get(ASSERTION_FIELD)
    org_id = raw.get("org_id")
    try:
        if not isinstance(org_id, str):
            # Without an org no assertion can be checked against it.
            verifier.verify(token if isinstance(token, str) else None)
            raise AssertionRejected("forbidden", "the command names no org")
        admin = verifier.for_command(
            token if isinstance(token, str) else None, org_id=org_id, digest=wire_digest(raw)
        )
    except AssertionRejected as exc:
        return CommandReply.rejected(command_id, exc.kind, exc.message)
    try:
        command: Command = adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "command"
        return CommandReply.rejected(command_id, "invalid", f"{where}: {first['msg']}")
    return Admitted(command, admin)


async def run_once(
    pool: asyncpg.Pool, admitted: Admitted[Any], handler: CommandHandler
) -> CommandReply:
    command, admin = admitted.command, admitted.admin
    for _ in range(_ATTEMPTS):
        try:
            async with pool.acquire() as conn, conn.transaction():
                stored = await conn.fetchrow(
                    "SELECT reply, content_digest FROM processed_commands WHERE command_id = $1",
                    command.command_id,
                )
                if stored is not None:
                    if stored["content_digest"] not in (None, command.content_digest()):
                        return CommandReply.rejected(
                            command.command_id,
                            "conflict",
                            "this idempotency key was already used for a different command",
                        )
                    return CommandReply.model_validate(stored["reply"])
                if not await _spend(conn, admin, command.command_id):
                    # Nothing was written: the first use of this assertion stands alone.
                    return CommandReply.rejected(
                        command.command_id,
                        "forbidden",
                        "the admin assertion was already used for another command",
                    )
                reply = await handler(conn, command, admin)
                await conn.execute(
                    "INSERT INTO processed_commands"
                    " (command_id, command_type, reply, content_digest) VALUES ($1, $2, $3, $4)",
                    command.command_id,
                    type(command).__name__,
                    reply.model_dump(mode="json"),
                    command.content_digest(),
                )
                return reply
        except (ConcurrencyConflict, asyncpg.UniqueViolationError):
            log.info("command %s lost a race; retrying", command.command_id)
    return CommandReply.rejected(command.command_id, "conflict", "too much contention; retry")


# An hour past expiry: far beyond the verifier's 30 s leeway and any sane clock skew.
SPENT_KEPT_FOR = timedelta(hours=1)


async def _spend(conn: asyncpg.Connection, admin: AdminAssertion, command_id: uuid.UUID) -> bool:
    """Record the assertion's jti for this command; False if another command has it.

    A concurrent spend of the same jti waits on the primary key and then finds it taken.
    Jtis whose assertions expired well past any verifier's leeway are forgotten here:
    the verifier refuses those tokens on their expiry alone.
    """
    await conn.execute(
        "DELETE FROM spent_assertions WHERE expires_at < now() - $1::interval", SPENT_KEPT_FOR
    )
    spent_by = await conn.fetchval(
        "INSERT INTO spent_assertions (jti, command_id, admin, expires_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING RETURNING command_id",
        admin.jti,
        command_id,
        admin.sub,
        admin.expires_at,
    )
    if spent_by is None:
        spent_by = await conn.fetchval(
            "SELECT command_id FROM spent_assertions WHERE jti = $1", admin.jti
        )
    return bool(spent_by == command_id)


class CommandOwner:
    """A command-owning service's use cases: each admitted command runs once.

    A subclass names the commands it parses (`commands`, for `execute`) and decides them
    (`_change`). Its subscriber (shared.command_intake) admits each command and hands it to
    `run`; `execute` is the same path from the bytes a command topic carries.
    """

    commands: ClassVar[TypeAdapter[Any]]

    def __init__(
        self, pool: asyncpg.Pool, verifier: AssertionVerifier, clock: Callable[[], datetime]
    ) -> None:
        self._pool = pool
        self._verifier = verifier
        self._clock = clock

    @property
    def verifier(self) -> AssertionVerifier:
        return self._verifier

    async def run(self, command: Command, admin: AdminAssertion) -> CommandReply:
        return await run_once(self._pool, Admitted(command, admin), self._change)

    async def execute(self, body: bytes) -> CommandReply:
        admitted = admit(self.commands, self._verifier, body)
        if isinstance(admitted, CommandReply):
            return admitted
        return await self.run(admitted.command, admitted.admin)

    async def _change(
        self, conn: asyncpg.Connection, command: Any, admin: AdminAssertion
    ) -> CommandReply:
        raise NotImplementedError


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None

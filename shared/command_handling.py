"""Running a command exactly once: its events and its reply commit in one transaction.

A redelivered or retried command (same `command_id`) gets the reply stored the first
time and appends nothing. A lost optimistic-concurrency race is retried from a fresh load.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from shared.commands import Command, CommandReply
from shared.eventstore import ConcurrencyConflict

log = logging.getLogger(__name__)

CommandHandler = Callable[[asyncpg.Connection, Any], Awaitable[CommandReply]]
_ATTEMPTS = 5


def parse_command(adapter: TypeAdapter[Any], body: bytes) -> Command | CommandReply:
    """The command, or a rejection that names what is wrong (never echoing values)."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return CommandReply.rejected(None, "invalid", "command is not JSON")
    try:
        command: Command = adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "command"
        command_id = raw.get("command_id") if isinstance(raw, dict) else None
        return CommandReply.rejected(
            _uuid_or_none(command_id), "invalid", f"{where}: {first['msg']}"
        )
    return command


async def run_once(pool: asyncpg.Pool, command: Command, handler: CommandHandler) -> CommandReply:
    for _ in range(_ATTEMPTS):
        try:
            async with pool.acquire() as conn, conn.transaction():
                stored = await conn.fetchval(
                    "SELECT reply FROM processed_commands WHERE command_id = $1",
                    command.command_id,
                )
                if stored is not None:
                    return CommandReply.model_validate(stored)
                reply = await handler(conn, command)
                await conn.execute(
                    "INSERT INTO processed_commands (command_id, command_type, reply)"
                    " VALUES ($1, $2, $3)",
                    command.command_id,
                    type(command).__name__,
                    reply.model_dump(mode="json"),
                )
                return reply
        except (ConcurrencyConflict, asyncpg.UniqueViolationError):
            log.info("command %s lost a race; retrying", command.command_id)
    return CommandReply.rejected(command.command_id, "conflict", "too much contention; retry")


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None

"""preferences: commands in, org-preferences events out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from services.preferences.domain import OrgPreferences
from shared.command_handling import parse_command, run_once
from shared.commands import (
    PREFERENCES_COMMAND_ADAPTER,
    CommandReply,
    DisableMfaPolicy,
    EnableMfaPolicy,
    GetMfaPolicy,
    SetPortalName,
)
from shared.eventstore import append_events, load_stream

ChangeCommand = EnableMfaPolicy | DisableMfaPolicy | SetPortalName


class PreferencesService:
    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], datetime]) -> None:
        self._pool = pool
        self._clock = clock

    async def execute(self, body: bytes) -> CommandReply:
        command = parse_command(PREFERENCES_COMMAND_ADAPTER, body)
        if isinstance(command, CommandReply):
            return command
        if isinstance(command, GetMfaPolicy):
            async with self._pool.acquire() as conn:
                prefs = await _load(conn, command.org_id)
            return CommandReply.accepted(command.command_id, _view(prefs))
        assert isinstance(command, ChangeCommand)
        return await run_once(self._pool, command, self._change)

    async def _change(self, conn: asyncpg.Connection, command: ChangeCommand) -> CommandReply:
        prefs = await _load(conn, command.org_id)
        cause = command.cause(self._clock())
        match command:
            case EnableMfaPolicy():
                events = prefs.set_mfa_policy(True, cause)
            case DisableMfaPolicy():
                events = prefs.set_mfa_policy(False, cause)
            case SetPortalName():
                events = prefs.set_portal_name(command.portal_name, cause)
        await append_events(conn, events)
        for event in events:
            prefs = prefs.apply(event)  # type: ignore[arg-type]
        return CommandReply.accepted(command.command_id, _view(prefs))


async def _load(conn: asyncpg.Connection, org_id: str) -> OrgPreferences:
    return OrgPreferences.from_events(org_id, await load_stream(conn, "org_preferences", org_id))


def _view(prefs: OrgPreferences) -> dict[str, object]:
    return {
        "org_id": prefs.org_id,
        "mfa_enabled": prefs.mfa_enabled,
        "portal_name": prefs.issuer,
        "version": prefs.version,
    }

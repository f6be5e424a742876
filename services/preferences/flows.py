"""preferences' use cases: change an org's MFA policy or portal name; read the policy."""

from __future__ import annotations

import asyncpg

from services.preferences.adapters import append, load_preferences
from services.preferences.domain import OrgPreferences
from shared.admin_identity import AdminAssertion
from shared.command_handling import CommandOwner
from shared.contracts import (
    PREFERENCES_COMMAND_ADAPTER,
    CommandReply,
    DisableMfaPolicy,
    EnableMfaPolicy,
    SetPortalName,
)
from shared.read_your_writes import WritePosition

ChangeCommand = EnableMfaPolicy | DisableMfaPolicy | SetPortalName


class PreferencesService(CommandOwner):
    commands = PREFERENCES_COMMAND_ADAPTER

    async def policy(self, org_id: str) -> OrgPreferences:
        async with self._pool.acquire() as conn:
            return await load_preferences(conn, org_id)

    async def _change(
        self, conn: asyncpg.Connection, command: ChangeCommand, admin: AdminAssertion
    ) -> CommandReply:
        prefs = await load_preferences(conn, command.org_id)
        cause = command.cause(self._clock(), admin.sub)
        match command:
            case EnableMfaPolicy():
                events = prefs.set_mfa_policy(True, cause)
            case DisableMfaPolicy():
                events = prefs.set_mfa_policy(False, cause)
            case SetPortalName():
                events = prefs.set_portal_name(command.portal_name, cause)
        await append(conn, events)
        for event in events:
            prefs = prefs.apply(event)  # type: ignore[arg-type]
        # Ids and status only: every reader of the reply topic sees this.
        return CommandReply.accepted(
            command.command_id,
            {"org_id": prefs.org_id, "mfa_enabled": prefs.mfa_enabled, "version": prefs.version},
            WritePosition("org_preferences", prefs.org_id, prefs.version),
        )

"""portal.preferences.commands (key: org_id): an org's MFA policy and portal name."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from shared.contracts.commands import Command
from shared.contracts.topics import PREFERENCES_COMMANDS


class OrgPreferencesCommand(Command):
    topic: ClassVar[str] = PREFERENCES_COMMANDS


class EnableMfaPolicy(OrgPreferencesCommand):
    command_type: Literal["EnableMfaPolicy"] = "EnableMfaPolicy"


class DisableMfaPolicy(OrgPreferencesCommand):
    command_type: Literal["DisableMfaPolicy"] = "DisableMfaPolicy"


class SetPortalName(OrgPreferencesCommand):
    command_type: Literal["SetPortalName"] = "SetPortalName"
    portal_name: str = Field(min_length=1, max_length=200)


PreferencesCommand = Annotated[
    EnableMfaPolicy | DisableMfaPolicy | SetPortalName,
    Field(discriminator="command_type"),
]
PREFERENCES_COMMAND_ADAPTER: TypeAdapter[PreferencesCommand] = TypeAdapter(
    PreferencesCommand, config=ConfigDict(defer_build=True)
)

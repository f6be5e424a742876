"""preferences' entry points: its command subscriber, and the admin read over HTTP (an
org's MFA policy, for an assertion of that org)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.preferences.flows import PreferencesService
from shared.admin_access import AdminBearer
from shared.command_intake import Admin, CommandIntake
from shared.contracts import PREFERENCES_COMMANDS, CommandReply, PreferencesCommand
from shared.http.path_params import OrgId
from shared.http.problems import problems
from shared.settings import Settings


def command_intake(settings: Settings, service: Callable[[], PreferencesService]) -> CommandIntake:
    """The broker that answers portal.preferences.commands (`service` once it runs)."""
    intake = CommandIntake(name="preferences", settings=settings, owner=service)

    @intake.subscribe(PREFERENCES_COMMANDS)
    async def preferences_commands(command: PreferencesCommand, admin: Admin) -> CommandReply:
        """Key: org_id. Each carries an admin assertion (docs/security.md). With a `reply_to`
        header, the reply goes to portal.admin.replies with the same `correlation_id`."""
        return await service().run(command, admin)

    return intake


router = APIRouter()


class MfaPolicyView(BaseModel):
    org_id: str
    mfa_enabled: bool
    portal_name: str


@router.get(
    "/v1/orgs/{org_id}/mfa-policy",
    responses={200: {"model": MfaPolicyView}, **problems(401, 403, 503)},
)
async def mfa_policy(request: Request, org_id: OrgId, admin: AdminBearer) -> dict[str, object]:
    admin.for_org(org_id)
    service: PreferencesService = request.app.state.service
    prefs = await service.policy(org_id)
    return {"org_id": org_id, "mfa_enabled": prefs.mfa_enabled, "portal_name": prefs.issuer}

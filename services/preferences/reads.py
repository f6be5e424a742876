"""preferences' admin read over HTTP: an org's MFA policy, for an assertion of that org."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from services.preferences.handlers import PreferencesService
from shared.admin_access import AdminBearer
from shared.http.path_params import OrgId
from shared.http.problems import problems

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

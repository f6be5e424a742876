"""contacts' admin reads over HTTP: the org's contacts, for an assertion of that org."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from services.contacts.handlers import ContactsService
from shared.admin_access import AdminBearer
from shared.http.path_params import ContactId, OrgId

router = APIRouter()


def _service(request: Request) -> ContactsService:
    service: ContactsService = request.app.state.service
    return service


@router.get("/v1/orgs/{org_id}/contacts")
async def list_contacts(request: Request, org_id: OrgId, admin: AdminBearer) -> dict[str, Any]:
    admin.for_org(org_id)
    return {"contacts": await _service(request).contacts(org_id)}


@router.get("/v1/orgs/{org_id}/contacts/{contact_id}")
async def show_contact(
    request: Request, org_id: OrgId, contact_id: ContactId, admin: AdminBearer
) -> dict[str, Any]:
    admin.for_org(org_id)
    contact = await _service(request).contact(org_id, contact_id)
    if contact is None:
        # Another org's contact is answered exactly like a missing one.
        raise HTTPException(404, f"no contact {contact_id} in org {org_id}")
    return contact

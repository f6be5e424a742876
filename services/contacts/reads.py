"""contacts' admin reads over HTTP: the org's contacts, for an assertion of that org."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from services.contacts.handlers import ContactsService
from shared.admin_access import AdminBearer
from shared.http.path_params import ContactId, OrgId
from shared.http.problems import problems

router = APIRouter()


class ContactListed(BaseModel):
    contact_id: str
    org_id: str
    kind: Literal["customer", "vendor"]
    display_name: str
    email: str
    portal_access: bool
    mfa_epoch: int


class ContactList(BaseModel):
    contacts: list[ContactListed]


class ContactShown(ContactListed):
    invitation_expires_at: datetime | None


def _service(request: Request) -> ContactsService:
    service: ContactsService = request.app.state.service
    return service


@router.get(
    "/v1/orgs/{org_id}/contacts",
    responses={200: {"model": ContactList}, **problems(401, 403, 503)},
)
async def list_contacts(request: Request, org_id: OrgId, admin: AdminBearer) -> dict[str, Any]:
    admin.for_org(org_id)
    return {"contacts": await _service(request).contacts(org_id)}


@router.get(
    "/v1/orgs/{org_id}/contacts/{contact_id}",
    responses={200: {"model": ContactShown}, **problems(401, 403, 404, 503)},
)
async def show_contact(
    request: Request, org_id: OrgId, contact_id: ContactId, admin: AdminBearer
) -> dict[str, Any]:
    admin.for_org(org_id)
    contact = await _service(request).contact(org_id, contact_id)
    if contact is None:
        # Another org's contact is answered exactly like a missing one.
        raise HTTPException(404, f"no contact {contact_id} in org {org_id}")
    return contact

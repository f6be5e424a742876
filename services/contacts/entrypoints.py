"""contacts' entry points: its command subscriber, and the admin reads over HTTP (the org's
contacts, for an assertion of that org)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from services.contacts.flows import ContactsService
from shared.admin_access import AdminBearer
from shared.command_intake import Admin, CommandIntake
from shared.contracts import CONTACTS_COMMANDS, CommandReply, ContactsCommand
from shared.http.path_params import ContactId, OrgId
from shared.http.problems import problems
from shared.settings import Settings


def command_intake(settings: Settings, service: Callable[[], ContactsService]) -> CommandIntake:
    """The broker that answers portal.contacts.commands (`service` once it runs)."""
    intake = CommandIntake(name="contacts", settings=settings, owner=service)

    @intake.subscribe(CONTACTS_COMMANDS)
    async def contacts_commands(command: ContactsCommand, admin: Admin) -> CommandReply:
        """Key: contact_id. Each carries an admin assertion (docs/security.md). With a
        `reply_to` header, the reply goes to portal.admin.replies, same `correlation_id`."""
        return await service().run(command, admin)

    return intake


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

"""`portal-mfa admin --org ORG contacts ...`: the org's customers and vendors.

Changes are commands over Kafka; `list` and `show` read the contacts service over HTTP.
Command replies carry no name or email, so what is printed of those comes from the input.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

import typer

from portal_mfa.cli.console import (
    JsonFlag,
    bearer_of,
    emit,
    org_of,
    out,
    read,
    send,
    shown,
    written,
)
from shared.tokens import hash_token, new_token

# The command models and the settings are imported inside each command: pydantic models
# are slow to build, and `--help` or a read needs none of the commands.

contacts = typer.Typer(help="The org's customers and vendors, their portal access and MFA.")
ContactId = Annotated[str, typer.Argument(help="The contact's id (from `contacts add`).")]


@contacts.command("add", help="Add a customer or vendor; prints its contact_id.")
def add(
    ctx: typer.Context,
    kind: Annotated[Literal["customer", "vendor"], typer.Option(help="customer or vendor")],
    name: Annotated[str, typer.Option(help="Display name.")],
    email: Annotated[str, typer.Option(help="Login email for the portal.")],
    as_json: JsonFlag = False,
) -> None:
    from shared.contracts import CreateContact

    command = CreateContact(org_id=org_of(ctx), kind=kind, display_name=name, email=email)
    result = send(ctx, command)
    shown_result = {"contact_id": result["contact_id"], "kind": kind, "email": command.email}
    emit({**shown_result, **written(ctx, result)}, as_json)


@contacts.command("grant-portal-access", help="Invite the contact; prints the invitation token.")
def grant(ctx: typer.Context, contact_id: ContactId, as_json: JsonFlag = False) -> None:
    from shared.contracts import GrantPortalAccess

    # The token is made here and only its hash is sent: it never crosses Kafka.
    token = new_token()
    result = send(
        ctx,
        GrantPortalAccess(
            org_id=org_of(ctx),
            contact_id=contact_id,
            invitation_hash=hash_token(token),
        ),
    )
    emit(
        {
            "contact_id": contact_id,
            "invitation_token": token,
            "expires_at": result["invitation_expires_at"],
            **written(ctx, result),
        },
        as_json,
    )


@contacts.command("revoke-portal-access", help="End the contact's portal access and sessions.")
def revoke(ctx: typer.Context, contact_id: ContactId, as_json: JsonFlag = False) -> None:
    from shared.contracts import RevokePortalAccess

    result = send(ctx, RevokePortalAccess(org_id=org_of(ctx), contact_id=contact_id))
    emit({**_fields(result, "contact_id", "portal_access"), **written(ctx, result)}, as_json)


@contacts.command("reset-mfa", help="Reset Portal MFA: the contact configures MFA again.")
def reset_mfa(
    ctx: typer.Context,
    contact_id: ContactId,
    reason: Annotated[str, typer.Option(help="Why (kept in the event log).")] = "",
    as_json: JsonFlag = False,
) -> None:
    from shared.contracts import ResetPortalMfa

    result = send(ctx, ResetPortalMfa(org_id=org_of(ctx), contact_id=contact_id, reason=reason))
    emit({**_fields(result, "contact_id", "mfa_epoch"), **written(ctx, result)}, as_json)


@contacts.command(
    "unlock", help="Lift the contact's login lockouts (second factor and failed passwords)."
)
def unlock(
    ctx: typer.Context,
    contact_id: ContactId,
    reason: Annotated[str, typer.Option(help="Why (kept in the event log).")] = "",
    as_json: JsonFlag = False,
) -> None:
    from shared.contracts import UnlockContact

    result = send(ctx, UnlockContact(org_id=org_of(ctx), contact_id=contact_id, reason=reason))
    emit({"contact_id": contact_id, "unlocked": True, **written(ctx, result)}, as_json)


@contacts.command("delete", help="Delete the contact; its login stops working.")
def delete(ctx: typer.Context, contact_id: ContactId, as_json: JsonFlag = False) -> None:
    from shared.contracts import DeleteContact

    result = send(ctx, DeleteContact(org_id=org_of(ctx), contact_id=contact_id))
    emit({"contact_id": contact_id, "deleted": True, **written(ctx, result)}, as_json)


@contacts.command("show", help="One contact, with its portal access and mfa_epoch.")
def show(ctx: typer.Context, contact_id: ContactId, as_json: JsonFlag = False) -> None:
    path = f"{_org_path(ctx)}/contacts/{urllib.parse.quote(contact_id, safe='')}"
    emit(_read(ctx, path), as_json)


@contacts.command("list", help="The org's contacts.")
def list_contacts(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    rows: list[dict[str, Any]] = _read(ctx, f"{_org_path(ctx)}/contacts")["contacts"]
    if as_json:
        emit({"contacts": rows}, True)
        return
    from rich.table import Table

    table = Table("contact_id", "kind", "name", "email", "portal", "mfa_epoch")
    for row in rows:
        table.add_row(
            shown(row["contact_id"]),
            shown(row["kind"]),
            shown(row["display_name"]),
            shown(row["email"]),
            "yes" if row["portal_access"] else "no",
            shown(row["mfa_epoch"]),
        )
    out.print(table)


def _fields(result: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: result[k] for k in keys}


def _org_path(ctx: typer.Context) -> str:
    return f"/v1/orgs/{urllib.parse.quote(org_of(ctx), safe='')}"


def _read(ctx: typer.Context, path: str) -> dict[str, Any]:
    from shared.settings import contacts_url, load_settings

    return read(contacts_url(load_settings()), "contacts", path, bearer_of(ctx))

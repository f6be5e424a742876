"""`portal-mfa admin`: commands to the owning services over Kafka, one reply each."""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Any

import typer

from portal_mfa.cli.console import JsonFlag, actor_of, emit, org_of, send
from portal_mfa.cli.contacts import contacts
from shared.commands import (
    DisableMfaPolicy,
    EnableMfaPolicy,
    GetMfaPolicy,
    SetPortalName,
)

admin = typer.Typer(help="Administer an org's portal: the MFA policy and its contacts.")
mfa = typer.Typer(help="The org's 'Enable MFA' portal preference.")
portal = typer.Typer(help="The org's portal.")
admin.add_typer(mfa, name="mfa")
admin.add_typer(portal, name="portal")
admin.add_typer(contacts, name="contacts")


@admin.callback()
def _admin(
    ctx: typer.Context,
    org: Annotated[str, typer.Option("--org", help="The org whose portal to administer.")],
    actor: Annotated[
        str | None,
        typer.Option(help="Who is acting (recorded as the events' actor).", show_default=False),
    ] = None,
) -> None:
    ctx.obj = {"org": org, "actor": actor or _default_actor()}


def _default_actor() -> str:
    return os.environ.get("PORTAL_MFA_ADMIN") or getpass.getuser()


@mfa.command("enable", help="Require MFA for the org's portal (customers and vendors).")
def mfa_enable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(EnableMfaPolicy(org_id=org_of(ctx), actor=actor_of(ctx)))), as_json)


@mfa.command("disable", help="Stop requiring MFA; enrolled contacts still need their code.")
def mfa_disable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(DisableMfaPolicy(org_id=org_of(ctx), actor=actor_of(ctx)))), as_json)


@mfa.command("status", help="Whether the org's portal requires MFA.")
def mfa_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(GetMfaPolicy(org_id=org_of(ctx), actor=actor_of(ctx)))), as_json)


@portal.command("name", help="Set the portal's name (the issuer authenticator apps show).")
def portal_name(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    emit(
        _policy_view(
            send(SetPortalName(org_id=org_of(ctx), actor=actor_of(ctx), portal_name=name))
        ),
        as_json,
    )


def _policy_view(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "org_id": result["org_id"],
        "mfa_enabled": result["mfa_enabled"],
        "portal_name": result["portal_name"],
    }

"""`portal-mfa admin`: commands to the owning services over Kafka, reads over HTTP."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

import typer

from portal_mfa.cli.console import (
    JsonFlag,
    bearer_of,
    credentials_of,
    emit,
    err,
    org_of,
    read,
    send,
    shown,
    written,
)
from portal_mfa.cli.contacts import contacts
from portal_mfa.cli.exit_codes import BAD_SETTING, EPILOG
from portal_mfa.cli.impact import show_impact

admin = typer.Typer(
    help="Administer an org's portal: the MFA policy and its contacts.", epilog=EPILOG
)
mfa = typer.Typer(help="The org's 'Enable MFA' portal preference.")
portal = typer.Typer(help="The org's portal.")
admin.add_typer(mfa, name="mfa")
admin.add_typer(portal, name="portal")
admin.add_typer(contacts, name="contacts")


@admin.callback()
def _admin(
    ctx: typer.Context,
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="The org whose portal to administer (required).", show_default=False
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            help="Who is acting, on the dev stack (recorded as the events' actor;"
            " default $PORTAL_MFA_ADMIN or dev-admin). Elsewhere PORTAL_MFA_ADMIN_TOKEN says.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Retry a command safely: the key a timed-out run printed. A command sent"
            " again under its key applies at most once and gets the first answer.",
            show_default=False,
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Return as soon as the owning service has accepted a change, without"
            " waiting until auth's login decision reflects it.",
        ),
    ] = False,
) -> None:
    ctx.obj = {
        "org": org,
        "actor": actor,
        "idempotency_key": idempotency_key,
        "wait": not no_wait,
    }


DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Send nothing: say how many contacts will be asked to configure MFA, and how"
        " many have configured it and will still need their code.",
    ),
]


@mfa.command("enable", help="Require MFA for the org's portal (customers and vendors).")
def mfa_enable(ctx: typer.Context, as_json: JsonFlag = False, dry_run: DryRun = False) -> None:
    _set_policy(ctx, True, as_json, dry_run)


@mfa.command("disable", help="Stop requiring MFA; enrolled contacts still need their code.")
def mfa_disable(ctx: typer.Context, as_json: JsonFlag = False, dry_run: DryRun = False) -> None:
    _set_policy(ctx, False, as_json, dry_run)


def _set_policy(ctx: typer.Context, enabled: bool, as_json: bool, dry_run: bool) -> None:
    if dry_run:
        show_impact(ctx, would_be=enabled, as_json=as_json)
        return
    from shared.contracts import DisableMfaPolicy, EnableMfaPolicy

    command = EnableMfaPolicy if enabled else DisableMfaPolicy
    result = send(ctx, command(org_id=org_of(ctx)))
    emit({**_policy_status(result), **written(ctx, result)}, as_json)


@mfa.command("status", help="Whether the org's portal requires MFA.")
def mfa_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    from shared.settings import load_settings, preferences_url

    org = urllib.parse.quote(org_of(ctx), safe="")
    policy = read(
        preferences_url(load_settings()),
        "preferences",
        f"/v1/orgs/{org}/mfa-policy",
        bearer_of(ctx),
    )
    emit({k: policy[k] for k in ("org_id", "mfa_enabled", "portal_name")}, as_json)


@portal.command("name", help="Set the portal's name (the issuer authenticator apps show).")
def portal_name(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    from shared.contracts import SetPortalName

    result = send(ctx, SetPortalName(org_id=org_of(ctx), portal_name=name))
    # The reply carries ids and status only; the name is the one given here.
    emit({**_policy_status(result), "portal_name": name, **written(ctx, result)}, as_json)


@admin.command(
    "token", help="Mint an admin assertion for HTTP callers (dev stack only); JSON or the token."
)
def token(
    ctx: typer.Context,
    scope: Annotated[
        Literal["admin", "audit"], typer.Option(help="admin: reads and more; audit: audit reads.")
    ] = "admin",
    as_json: JsonFlag = False,
) -> None:
    from portal_mfa.admin_credentials import NoCredentials

    try:
        minted = credentials_of(ctx).mint(org_of(ctx), scope)
    except NoCredentials as exc:
        err.print(f"error: {shown(exc)}", highlight=False)
        raise typer.Exit(BAD_SETTING) from None
    if as_json:
        emit({"token": minted.token, "expires_at": minted.expires_at.isoformat()}, True)
    else:
        print(minted.token)


def _policy_status(result: dict[str, Any]) -> dict[str, Any]:
    return {"org_id": result["org_id"], "mfa_enabled": result["mfa_enabled"]}

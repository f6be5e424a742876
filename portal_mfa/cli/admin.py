"""`portal-mfa admin`: commands to the owning services over Kafka, one reply each."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from portal_mfa.command_client import CommandClient, NoAnswer
from shared.commands import (
    Command,
    CommandReply,
    DisableMfaPolicy,
    EnableMfaPolicy,
    GetMfaPolicy,
    SetPortalName,
)
from shared.settings import load_settings

admin = typer.Typer(help="Administer an org's portal: the MFA policy and its contacts.")
mfa = typer.Typer(help="The org's 'Enable MFA' portal preference.")
portal = typer.Typer(help="The org's portal.")
admin.add_typer(mfa, name="mfa")
admin.add_typer(portal, name="portal")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
out = Console()
err = Console(stderr=True, soft_wrap=True)


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


def send(command: Command) -> dict[str, Any]:
    """Send one command; on a rejection or no answer, print one line and exit non-zero."""
    settings = load_settings()

    async def roundtrip() -> CommandReply:
        async with CommandClient(settings) as client:
            return await client.send(command)

    try:
        reply = asyncio.run(roundtrip())
    except NoAnswer as exc:
        err.print(f"error: {exc} (is the service running?)", highlight=False)
        raise typer.Exit(3) from None
    except (OSError, KafkaError) as exc:
        err.print(
            f"error: cannot talk to Kafka at {settings.kafka_bootstrap}: {exc!r}", highlight=False
        )
        raise typer.Exit(3) from None
    if not reply.ok:
        assert reply.rejection is not None
        err.print(f"rejected ({reply.rejection.code}): {reply.rejection.message}", highlight=False)
        raise typer.Exit(1)
    return reply.result


def emit(result: dict[str, Any], as_json: bool, keys: list[str] | None = None) -> None:
    if as_json:
        print(json.dumps(result))
        return
    table = Table(show_header=False, box=None)
    for key in keys or list(result):
        table.add_row(f"[bold]{key}[/bold]", str(result.get(key)))
    out.print(table)


def _org(ctx: typer.Context) -> str:
    org: str = ctx.obj["org"]
    return org


def _actor(ctx: typer.Context) -> str:
    actor: str = ctx.obj["actor"]
    return actor


@mfa.command("enable", help="Require MFA for the org's portal (customers and vendors).")
def mfa_enable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(EnableMfaPolicy(org_id=_org(ctx), actor=_actor(ctx)))), as_json)


@mfa.command("disable", help="Stop requiring MFA; enrolled contacts still need their code.")
def mfa_disable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(DisableMfaPolicy(org_id=_org(ctx), actor=_actor(ctx)))), as_json)


@mfa.command("status", help="Whether the org's portal requires MFA.")
def mfa_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    emit(_policy_view(send(GetMfaPolicy(org_id=_org(ctx), actor=_actor(ctx)))), as_json)


@portal.command("name", help="Set the portal's name (the issuer authenticator apps show).")
def portal_name(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    emit(
        _policy_view(send(SetPortalName(org_id=_org(ctx), actor=_actor(ctx), portal_name=name))),
        as_json,
    )


def _policy_view(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "org_id": result["org_id"],
        "mfa_enabled": result["mfa_enabled"],
        "portal_name": result["portal_name"],
    }

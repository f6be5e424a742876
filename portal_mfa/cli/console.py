"""What every admin subcommand shares: sending one command, and printing its result."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from portal_mfa.command_client import CommandClient, NoAnswer
from shared.commands import Command, CommandReply
from shared.settings import load_settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
out = Console()
err = Console(stderr=True, soft_wrap=True)


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


def org_of(ctx: typer.Context) -> str:
    org: str = ctx.obj["org"]
    return org


def actor_of(ctx: typer.Context) -> str:
    actor: str = ctx.obj["actor"]
    return actor

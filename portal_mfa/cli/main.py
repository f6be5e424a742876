"""The `portal-mfa` command."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from portal_mfa.cli.admin import admin
from portal_mfa.cli.audit import audit
from portal_mfa.cli.docs import docs
from portal_mfa.cli.keys import keys
from portal_mfa.cli.projection import projection
from shared.settings import load_settings

app = typer.Typer(
    help="Portal MFA: multi-factor login for customer and vendor portals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(admin, name="admin")
app.add_typer(audit, name="audit")
app.add_typer(projection, name="projection")
app.add_typer(docs, name="docs")
app.add_typer(keys, name="keys")


@app.callback()
def _quiet_clients() -> None:
    # Client libraries log connection trouble themselves; the CLI says it once, in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@app.command(help="Run the whole system on this machine (embedded broker and PostgreSQL).")
def dev() -> None:
    from portal_mfa.dev import run_dev

    raise typer.Exit(run_dev(load_settings()))


@app.command(help="Run one service: auth, preferences, contacts or audit.")
def serve(
    service: Annotated[str, typer.Argument(help="auth | preferences | contacts | audit")],
) -> None:
    from portal_mfa.serve import SERVICES
    from portal_mfa.serve import serve as run

    if service not in SERVICES:
        raise typer.BadParameter(f"expected one of {', '.join(SERVICES)}", param_hint="SERVICE")
    run(load_settings(), service)


def main() -> None:
    """Entry point: invalid input becomes one line and exit status 2, not a traceback."""
    try:
        app(prog_name="portal-mfa")
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        print(f"error: invalid {where}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None

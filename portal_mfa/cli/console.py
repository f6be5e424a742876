"""What every admin subcommand shares: proving who the admin is, sending one command or
making one read, and printing the result."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from portal_mfa.cli.dev_stack import answers, what_to_set
from portal_mfa.cli.exit_codes import BAD_SETTING, REJECTED, TIMED_OUT, UNREACHABLE

if TYPE_CHECKING:
    # Imported where they are used: the Kafka client, the JWT and settings machinery cost
    # ~0.5 s of start-up, which `--help` and the HTTP reads never need (nor asyncio and
    # urllib.request, ~25 ms more, which `--help` does not need).
    import urllib.error

    from rich.console import Console
    from rich.text import Text

    from portal_mfa.admin_credentials import AdminCredentials
    from shared.admin_identity import Scope
    from shared.contracts import Command, CommandReply

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


class LazyConsole:
    """A rich `Console`, made when something is first printed through it: `--json` output
    goes to stdout with `print`, and importing rich's console costs every command ~45 ms."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)

    @property
    def file(self) -> IO[str]:
        return self.console.file

    @file.setter
    def file(self, new_file: IO[str] | None) -> None:
        # None: back to the console's default stream (rich treats an unset file so).
        self.console.file = new_file  # type: ignore[assignment]


# No markup: names, reasons and payloads come from users and services, and a contact named
# "[/]" must print as such, not crash the command or restyle the admin's terminal. Styling
# is done with `Text` objects instead.
out = LazyConsole(markup=False, highlight=False)
err = LazyConsole(stderr=True, soft_wrap=True, markup=False, highlight=False)

# Control characters (an ESC starts a terminal escape sequence) and the invisible
# bidirectional overrides that make text read differently from what it is.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(value: object) -> str:
    """A value from outside, safe to print: unprintable characters appear as escapes."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), str(value))


def label(name: str) -> Text:
    from rich.text import Text

    return Text(name, style="bold")


def credentials(actor: str | None = None) -> AdminCredentials:
    from portal_mfa.admin_credentials import NoCredentials, admin_credentials
    from shared.settings import load_settings

    settings = load_settings()
    try:
        return admin_credentials(settings, actor)
    except NoCredentials as exc:
        if not settings.admin_token and not answers(settings.kafka_bootstrap):
            # No dev stack to mint from, and no broker either: that is the thing to fix.
            err.print(
                f"error: nothing answers at {settings.kafka_bootstrap}:"
                f" {what_to_set(settings.kafka_bootstrap)}; and {shown(exc)}",
                highlight=False,
            )
            raise typer.Exit(UNREACHABLE) from None
        err.print(f"error: {shown(exc)}", highlight=False)
        raise typer.Exit(BAD_SETTING) from None


def idempotency_key(given: str | None) -> uuid.UUID | None:
    """The command id a key names: a UUID as printed, or any other text hashed into one."""
    if not given:
        return None
    try:
        return uuid.UUID(given)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"portal-mfa:idempotency:{given}")


def send(ctx: typer.Context, command: Command) -> dict[str, Any]:
    """Send one command; on a rejection or no answer, print one line and exit non-zero."""
    import asyncio

    from aiokafka.errors import KafkaError

    from portal_mfa.command_client import CommandClient, NoAnswer
    from shared.settings import load_settings

    settings = load_settings()
    key = idempotency_key(ctx.obj.get("idempotency_key"))
    if key is not None:
        command = command.model_copy(update={"command_id": key})
    signed = credentials_of(ctx).sign(command)

    async def roundtrip() -> CommandReply:
        async with CommandClient(settings) as client:
            return await client.send(signed)

    try:
        reply = asyncio.run(roundtrip())
    except NoAnswer as exc:
        # "No answer" is not "not applied": the command may still be consumed later.
        err.print(
            f"error: {shown(exc)}. It may still apply. Retry safely (it applies at most once) with:"
            f" --idempotency-key {command.command_id}",
        )
        raise typer.Exit(TIMED_OUT) from None
    except (OSError, KafkaError) as exc:
        err.print(
            f"error: cannot talk to Kafka at {settings.kafka_bootstrap}: {shown(repr(exc))};"
            f" {what_to_set(settings.kafka_bootstrap)}",
            highlight=False,
        )
        raise typer.Exit(UNREACHABLE) from None
    if not reply.ok:
        assert reply.rejection is not None
        rejection = reply.rejection
        err.print(
            f"rejected ({shown(rejection.code)}): {shown(rejection.message)}", highlight=False
        )
        raise typer.Exit(REJECTED)
    position = reply.result.get("position")
    if ctx.obj.get("wait", True) and isinstance(position, str):
        _wait_until_login_reflects(ctx, command, position)
    return reply.result


def written(ctx: typer.Context, result: dict[str, Any]) -> dict[str, Any]:
    """With --no-wait, where the change was written: a reader passes it as `min_position`
    to be answered only once the change shows (shared.read_your_writes)."""
    if ctx.obj.get("wait", True) or "position" not in result:
        return {}
    return {"position": result["position"]}


# The login-requirement lookup of any contact reflects the org's policy; for a policy
# change the CLI asks about this one, which no contact id the services make can be.
_ANY_CONTACT = "-"


def _wait_until_login_reflects(ctx: typer.Context, command: Command, position: str) -> None:
    """Return once auth's login decision reflects the change (its reply's `position`).

    auth holds each lookup up to its own bound and answers 503 while it has not applied
    the position; this asks again until the command timeout.
    """
    import urllib.error
    import urllib.request

    from shared.contracts import ContactCommand
    from shared.read_your_writes import READ_WAIT_S
    from shared.settings import auth_url, load_settings

    settings = load_settings()
    contact = command.target_id() if isinstance(command, ContactCommand) else _ANY_CONTACT
    org = urllib.parse.quote(command.org_id, safe="")
    query = urllib.parse.urlencode({"min_position": position})
    url = f"{auth_url(settings)}/v1/orgs/{org}/contacts/{urllib.parse.quote(contact, safe='')}"
    bearer = bearer_of(ctx, "audit")
    deadline = time.monotonic() + settings.command_timeout_s
    while True:
        request = urllib.request.Request(  # noqa: S310 (a URL from the settings)
            f"{url}/login-requirement?{query}", headers={"Authorization": f"Bearer {bearer}"}
        )
        try:
            # auth holds the request up to READ_WAIT_S: a shorter timeout would cut its answer.
            with urllib.request.urlopen(request, timeout=READ_WAIT_S + 5):  # noqa: S310
                return
        except TimeoutError:
            pass  # a busy auth: ask again until the deadline
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                err.print(
                    f"error: the change applied, but auth answered {exc.code} when asked"
                    " whether logins reflect it; --no-wait skips this check",
                    highlight=False,
                )
                raise typer.Exit(UNREACHABLE) from None
        except OSError as exc:
            err.print(
                "error: the change applied, but auth is unreachable at"
                f" {shown(auth_url(settings))}:"
                f" {shown(exc)} (PORTAL_MFA_AUTH_URL says where it is; --no-wait skips this)",
                highlight=False,
            )
            raise typer.Exit(UNREACHABLE) from None
        if time.monotonic() >= deadline:
            err.print(
                "error: the change applied, but logins did not reflect it within"
                f" {settings.command_timeout_s:g}s; re-run with --idempotency-key"
                f" {command.command_id} to wait again",
            )
            raise typer.Exit(TIMED_OUT)
        time.sleep(0.1)


def read(
    base: str, what: str, path: str, bearer: str, *, timeout_s: float = 10, **query: object
) -> dict[str, Any]:
    """GET one admin read from the `what` service with the assertion as bearer token.

    A refusal (401, 403, 404) prints one line and exits 1; an unreachable service exits 3.
    """
    import urllib.error
    import urllib.request

    if not base.startswith(("http://", "https://")):
        err.print(
            f"error: invalid setting PORTAL_MFA_{what.upper()}_URL: must be http(s): {shown(base)}",
            highlight=False,
        )
        raise typer.Exit(BAD_SETTING)
    params = {k: str(v) for k, v in query.items() if v is not None}
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    # The assertion goes only in the header: never into a URL, a log line or an error.
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})  # noqa: S310 (http(s) checked)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            body: dict[str, Any] = json.load(answer)
            return body
    except urllib.error.HTTPError as exc:
        problem = _problem(exc)
        reason = problem.get("detail") or problem.get("title") or exc.reason
        if exc.code in (401, 403, 404):
            kind = str(problem.get("type", "")).rsplit("/", 1)[-1] or str(exc.code)
            err.print(f"rejected ({shown(kind)}): {shown(reason)}", highlight=False)
            raise typer.Exit(REJECTED) from None
        err.print(
            f"error: the {what} service answered {exc.code}: {shown(reason)}", highlight=False
        )
    except OSError as exc:
        err.print(
            f"error: cannot reach the {what} service at {shown(base)}: {shown(exc)}"
            f" (PORTAL_MFA_{what.upper()}_URL says where it is)",
            highlight=False,
        )
    raise typer.Exit(UNREACHABLE)


def _problem(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def emit(result: dict[str, Any], as_json: bool, keys: list[str] | None = None) -> None:
    if as_json:
        print(json.dumps(result))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in keys or list(result):
        table.add_row(label(key), shown(result.get(key)))
    out.print(table)


def org_of(ctx: typer.Context) -> str:
    org: str | None = ctx.obj["org"]
    if org is None:
        # Checked here, not by the parser: a required group option would fail every
        # subcommand's --help before the help is printed.
        raise typer.BadParameter("missing: name the org to administer", ctx, param_hint="'--org'")
    return org


def credentials_of(ctx: typer.Context) -> AdminCredentials:
    """The admin's credentials, resolved once per invocation (so `--help` needs none)."""
    if "credentials" not in ctx.obj:
        ctx.obj["credentials"] = credentials(ctx.obj.get("actor"))
    found: AdminCredentials = ctx.obj["credentials"]
    return found


def bearer_of(ctx: typer.Context, scope: Scope = "admin") -> str:
    return credentials_of(ctx).bearer(org_of(ctx), scope)

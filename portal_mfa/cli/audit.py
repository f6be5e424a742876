"""`portal-mfa audit`: read the event log kept by the audit service."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from portal_mfa.cli.console import JsonFlag, emit, err, out
from shared.settings import audit_url, load_settings

audit = typer.Typer(help="Read the event log: every event, and why a login needed what it did.")


def _get(path: str, timeout_s: float = 10, **query: object) -> dict[str, Any]:
    base = audit_url(load_settings())
    params = {k: str(v) for k, v in query.items() if v is not None}
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (configured URL)
            body: dict[str, Any] = json.load(answer)
            return body
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("title", exc.reason)
        err.print(f"error: the audit service answered {exc.code}: {detail}", highlight=False)
    except OSError as exc:
        err.print(f"error: cannot reach the audit service at {base}: {exc}", highlight=False)
    raise typer.Exit(3)


@audit.command("tail", help="Stored events, oldest first; --follow streams new ones.")
def tail(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    org: Annotated[str | None, typer.Option(help="Only this org.")] = None,
    contact: Annotated[str | None, typer.Option(help="Only this contact (aggregate id).")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    as_json: JsonFlag = False,
) -> None:
    after = 0
    while True:
        page = _get("/v1/events", after=after, org=org, contact=contact, type=event_type)
        for envelope in page["events"]:
            _print_event(envelope, as_json)
        after = page["next"]
        if page["events"]:
            continue
        if not follow:
            return
        time.sleep(0.5)


def _print_event(envelope: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(envelope), flush=True)
        return
    payload = " ".join(f"{k}={v}" for k, v in envelope["payload"].items())
    out.print(
        f"{envelope['occurred_at']}  {envelope['org_id']:<12} "
        f"{envelope['aggregate_type']}/{envelope['aggregate_id']} "
        f"v{envelope['aggregate_version']}  [bold]{envelope['event_type']}[/bold]  "
        f"by {envelope['actor']}  {payload}",
        highlight=False,
        soft_wrap=True,
    )


@audit.command("explain", help="What login required for a contact at a moment, and why.")
def explain(
    org: Annotated[str, typer.Option(help="The contact's org.")],
    contact: Annotated[str, typer.Option(help="The contact id.")],
    at: Annotated[
        datetime | None, typer.Option(help="RFC 3339 time (default: now).", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    quoted = urllib.parse.quote(org, safe=""), urllib.parse.quote(contact, safe="")
    answer = _get(
        f"/v1/orgs/{quoted[0]}/contacts/{quoted[1]}/explain", at=at.isoformat() if at else None
    )
    keys = ["requirement", "policy_enabled", "enrolled", "mfa_epoch", "decided_by"]
    if as_json:
        emit({k: answer[k] for k in keys}, True)
        return
    table = Table(show_header=False, box=None)
    for key in keys:
        value = answer[key]
        table.add_row(
            f"[bold]{key}[/bold]", "\n".join(value) if key == "decided_by" else str(value)
        )
    out.print(table)


@audit.command(
    "verify",
    help="Check the stored log: signatures, missing versions, and each org's hash chain.",
)
def verify(
    org: Annotated[str | None, typer.Option(help="Only this org.")] = None,
    as_json: JsonFlag = False,
) -> None:
    # Re-verifying every signature of a long log takes a while: give it minutes, not seconds.
    answer = _get("/v1/verify", timeout_s=600, org=org)
    keys = ["events_checked", "forged", "gaps", "chain_ok"]
    if as_json:
        emit({k: answer[k] for k in [*keys, "findings"]}, True)
        return
    clean = not answer["forged"] and not answer["gaps"] and answer["chain_ok"]
    out.print(
        f"{answer['events_checked']:,} events checked: "
        + ("[green]intact[/green]" if clean else "[red]TAMPERED[/red]"),
        highlight=False,
    )
    findings = answer["findings"]
    for item in findings["forged"]:
        out.print(f"  forged    event {item['event_id']}: {item['reason']}", highlight=False)
    for item in findings["gaps"]:
        missing = ", ".join(str(v) for v in item["missing_versions"])
        out.print(
            f"  gap       {item['aggregate_type']}/{item['aggregate_id']}: missing v{missing}",
            highlight=False,
        )
    for item in findings["chain_breaks"]:
        out.print(f"  chain     org {item['org_id']}: {item['problem']}", highlight=False)

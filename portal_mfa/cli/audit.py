"""`portal-mfa audit`: read the event log kept by the audit service.

Each read carries an admin assertion for the org it asks about (`*` without `--org`):
minted on the dev stack, PORTAL_MFA_ADMIN_TOKEN elsewhere.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import datetime
from typing import Annotated, Any

import typer

from portal_mfa.cli.console import JsonFlag, credentials, emit, label, out, read, shown

audit = typer.Typer(help="Read the event log: every event, and why a login needed what it did.")


def _get(
    path: str, for_org: str | None, *, timeout_s: float = 10, **query: object
) -> dict[str, Any]:
    from shared.admin_identity import EVERY_ORG
    from shared.settings import audit_url, load_settings

    bearer = credentials().bearer(for_org or EVERY_ORG, "audit")
    return read(audit_url(load_settings()), "audit", path, bearer, timeout_s=timeout_s, **query)


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
        page = _get("/v1/events", org, after=after, org=org, contact=contact, type=event_type)
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
    from rich.text import Text

    payload = " ".join(f"{shown(k)}={shown(v)}" for k, v in envelope["payload"].items())
    line = Text.assemble(
        f"{shown(envelope['occurred_at'])}  {shown(envelope['org_id']):<12} "
        f"{shown(envelope['aggregate_type'])}/{shown(envelope['aggregate_id'])} "
        f"v{shown(envelope['aggregate_version'])}  ",
        label(shown(envelope["event_type"])),
        f"  by {shown(envelope['actor'])}  {payload}",
    )
    out.print(line, soft_wrap=True)


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
        f"/v1/orgs/{quoted[0]}/contacts/{quoted[1]}/explain",
        org,
        at=at.isoformat() if at else None,
    )
    keys = ["requirement", "policy_enabled", "enrolled", "mfa_epoch", "decided_by"]
    if as_json:
        emit({k: answer[k] for k in keys}, True)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in keys:
        value = answer[key]
        shown_value = "\n".join(map(shown, value)) if key == "decided_by" else shown(value)
        table.add_row(label(key), shown_value)
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
    answer = _get("/v1/verify", org, timeout_s=600, org=org)
    keys = ["events_checked", "forged", "gaps", "chain_ok"]
    if as_json:
        emit({k: answer[k] for k in [*keys, "findings"]}, True)
        return
    from rich.text import Text

    clean = not answer["forged"] and not answer["gaps"] and answer["chain_ok"]
    verdict = Text("intact", style="green") if clean else Text("TAMPERED", style="red")
    out.print(Text.assemble(f"{answer['events_checked']:,} events checked: ", verdict))
    findings = answer["findings"]
    for item in findings["forged"]:
        out.print(f"  forged    event {shown(item['event_id'])}: {shown(item['reason'])}")
    for item in findings["gaps"]:
        missing = ", ".join(str(v) for v in item["missing_versions"])
        where = f"{shown(item['aggregate_type'])}/{shown(item['aggregate_id'])}"
        out.print(f"  gap       {where}: missing v{missing}")
    for item in findings["chain_breaks"]:
        out.print(f"  chain     org {shown(item['org_id'])}: {shown(item['problem'])}")

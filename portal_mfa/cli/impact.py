"""`portal-mfa admin --org ORG mfa enable|disable --dry-run`: what the change would mean.

Reads only (the policy from preferences, the contacts from contacts, each contact's login
requirement from auth); sends no command. The counting is portal_mfa.mfa_impact's, the
same the web console shows on *Settings → Customer Portal*.
"""

from __future__ import annotations

import urllib.parse

import typer

from portal_mfa.cli.console import bearer_of, emit, org_of, out, read
from portal_mfa.mfa_impact import preview


def show_impact(ctx: typer.Context, *, would_be: bool, as_json: bool) -> None:
    from shared.settings import auth_url, contacts_url, load_settings, preferences_url

    settings = load_settings()
    org = org_of(ctx)
    quoted = urllib.parse.quote(org, safe="")
    bearer = bearer_of(ctx)
    policy = read(preferences_url(settings), "preferences", f"/v1/orgs/{quoted}/mfa-policy", bearer)
    contacts = read(contacts_url(settings), "contacts", f"/v1/orgs/{quoted}/contacts", bearer)[
        "contacts"
    ]
    requirements = {
        c["contact_id"]: read(
            auth_url(settings),
            "auth",
            f"/v1/orgs/{quoted}/contacts/{urllib.parse.quote(c['contact_id'], safe='')}"
            "/login-requirement",
            bearer,
        )
        for c in contacts
        if c["portal_access"]
    }
    impact = preview(
        org,
        mfa_enabled_now=bool(policy["mfa_enabled"]),
        would_be=would_be,
        contacts=contacts,
        requirements=requirements,
    )
    if as_json:
        emit(impact.as_dict(), True)
        return
    for line in impact.sentences():
        out.print(line, highlight=False)
    out.print("Dry run: nothing was changed.", highlight=False)

"""`portal-mfa admin --org ORG mfa enable|disable --dry-run`: the impact, and no change.

Counted against the running system: contacts added and enrolled the way users do, the
policy read back after the dry run, and the audit log checked for anything it emitted.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.portal_client import Portal

pytestmark = pytest.mark.e2e


def dry_run(portal: Portal, change: str, *extra: str) -> str:
    done = portal.stack.cli("admin", "--org", portal.org, "mfa", change, "--dry-run", *extra)
    return done.stdout


def policy_events(portal: Portal) -> int:
    answer = portal.http.get(
        portal.stack.url("audit", "/v1/events"),
        params={"org": portal.org},
        headers=portal.stack.bearer(portal.org, "audit"),
    )
    assert answer.status_code == 200, answer.text
    return sum(e["event_type"].startswith("MfaPolicy") for e in answer.json()["events"])


def test_dry_runs_count_who_is_asked_and_who_stays_enrolled_and_change_nothing(
    portal: Portal,
) -> None:
    enrolled, waiting, _ = portal.prepare("customer", "vendor", "vendor", policy=True)
    portal.enroll(enrolled)
    portal.wait_requirement(enrolled.contact_id, enrolled=True)
    portal.admin(
        "contacts",
        "add",
        "--kind",
        "customer",
        "--name",
        "No access",
        "--email",
        f"none-{portal.org}@example.com",
    )  # no portal access: cannot sign in, so not counted
    before = policy_events(portal)

    disable = json.loads(dry_run(portal, "disable", "--json"))
    assert disable == {
        "org_id": portal.org,
        "mfa_enabled_now": True,
        "would_be": False,
        "contacts_with_portal_access": 3,
        "enrolled_still_need_totp": 1,
        "will_be_asked_to_configure": 0,
        "undecided": 0,
    }
    enable = json.loads(dry_run(portal, "enable", "--json"))
    assert enable["would_be"] is True
    assert enable["will_be_asked_to_configure"] == 2
    assert enable["enrolled_still_need_totp"] == 1

    text = dry_run(portal, "disable")
    assert "1 of 3 contacts with portal access have configured MFA" in text
    assert "nothing was changed" in text

    # Nothing was sent: the policy is as it was, the log has no new policy event, and the
    # contact still waiting is still asked to configure MFA.
    assert portal.admin("mfa", "status")["mfa_enabled"] is True
    assert policy_events(portal) == before
    assert portal.requirement(waiting.contact_id)["requirement"] == "enroll"

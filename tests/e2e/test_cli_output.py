"""Hostile names through the admin console: printed as they are, never as markup or
terminal control."""

from __future__ import annotations

import json
from subprocess import CompletedProcess

import pytest

from tests.dev_stack import RunningStack
from tests.e2e.portal_client import new_email, new_org, wait_until

pytestmark = pytest.mark.e2e

# A contact's name is typed by whoever created it: rich markup (a bare close tag crashes
# the renderer), a style tag, and a terminal escape that would recolour the admin's screen.
HOSTILE_NAMES = ["[/]", "[bold]x", "\x1b[31mred", "[link=https://evil.example]click[/link]"]


@pytest.fixture(scope="module")
def hostile_org(stack: RunningStack) -> tuple[str, dict[str, str]]:
    """An org whose contacts bear the hostile names; name -> contact_id."""
    org = new_org()
    ids: dict[str, str] = {}
    for name in HOSTILE_NAMES:
        added = stack.cli_json(
            "admin", "--org", org, "contacts", "add", "--kind", "vendor", "--name", name,
            "--email", new_email("hostile"),
        )  # fmt: skip
        ids[name] = added["contact_id"]
    return org, ids


def shows_literally(text: str, name: str) -> bool:
    """The name appears as typed, with any control character shown as an escape."""
    return name.replace("\x1b", "\\x1b") in text


def test_contacts_list_prints_hostile_names_as_they_are(
    stack: RunningStack, hostile_org: tuple[str, dict[str, str]]
) -> None:
    org, ids = hostile_org

    def listed() -> str | None:
        # Wide enough that the table need not fold a cell across lines.
        done = stack.cli_with({"COLUMNS": "250"}, "admin", "--org", org, "contacts", "list")
        assert done.returncode == 0, done.stderr
        return done.stdout if all(i in done.stdout for i in ids.values()) else None

    shown = wait_until(listed, timeout=10, what="the contacts to be listed")
    for name in HOSTILE_NAMES:
        assert shows_literally(shown, name), (name, shown)
    assert "\x1b" not in shown


def test_contacts_show_prints_a_hostile_name_as_it_is(
    stack: RunningStack, hostile_org: tuple[str, dict[str, str]]
) -> None:
    org, ids = hostile_org
    for name, contact_id in ids.items():

        def readable(contact_id: str = contact_id) -> CompletedProcess[str] | None:
            done = stack.cli("admin", "--org", org, "contacts", "show", contact_id, check=False)
            return done if done.returncode == 0 else None

        done = wait_until(readable, timeout=10, what="the contact to be readable")
        assert shows_literally(done.stdout, name), (name, done.stdout)
        assert "\x1b" not in done.stdout
        # --json keeps the value exact, for programs.
        shown = stack.cli_json("admin", "--org", org, "contacts", "show", contact_id)
        assert shown["display_name"] == name


def test_audit_tail_prints_hostile_payloads_as_they_are(
    stack: RunningStack, hostile_org: tuple[str, dict[str, str]]
) -> None:
    org, _ = hostile_org

    def tailed() -> str | None:
        lines = stack.cli("audit", "tail", "--org", org, "--json").stdout.splitlines()
        created = [json.loads(line) for line in lines if '"ContactCreated"' in line]
        if len(created) < len(HOSTILE_NAMES):
            return None
        return stack.cli("audit", "tail", "--org", org).stdout

    plain = wait_until(tailed, timeout=15, what="the audit log to hold every contact")
    for name in HOSTILE_NAMES:
        assert shows_literally(plain, f"display_name={name}"), (name, plain)
    assert "\x1b" not in plain

"""Every service reads the one shape of every service (docs/architecture.md):
domain, flows, adapters, entrypoints, bootstrap, main, and SQL only in adapters."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from shared.command_handling import CommandOwner
from shared.contracts import CONTACTS_COMMANDS, PREFERENCES_COMMANDS
from tests.unit.subscribers import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SHAPE = ("domain.py", "flows.py", "adapters.py", "entrypoints.py", "bootstrap.py", "main.py")
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")


@pytest.mark.parametrize("service", ["preferences", "contacts", "audit"])
def test_the_service_has_the_one_shape(service: str) -> None:
    folder = ROOT / "services" / service
    modules = {p.name for p in folder.glob("*.py")} - {"__init__.py"}
    assert modules == set(SHAPE)


@pytest.mark.parametrize("service", ["preferences", "contacts", "audit"])
def test_sql_sits_in_adapters_only(service: str) -> None:
    folder = ROOT / "services" / service
    found = [
        (name, match.group(0))
        for name in SHAPE
        if name != "adapters.py"
        for match in SQL.finditer((folder / name).read_text())
    ]
    assert found == []


def test_the_check_sees_sql() -> None:
    assert SQL.search('await conn.fetch("SELECT 1 FROM contact_directory")')


AUTH = ROOT / "services" / "auth"
AUTH_LAYERS = ("domain", "flows", "adapters", "entrypoints")


def test_auth_has_the_one_shape_in_packages() -> None:
    """auth is big: its layers are packages, beside bootstrap, main and its schema."""
    top = {p.name for p in AUTH.iterdir() if not p.name.startswith(("_", "."))}
    assert top == {*AUTH_LAYERS, "bootstrap.py", "main.py", "schema.sql"}


def test_auth_sql_sits_in_adapters_only() -> None:
    found = [
        (str(path.relative_to(AUTH)), match.group(0))
        for layer in ("domain", "flows", "entrypoints")
        for path in (AUTH / layer).rglob("*.py")
        for match in SQL.finditer(path.read_text())
    ] + [
        (name, match.group(0))
        for name in ("bootstrap.py", "main.py")
        for match in SQL.finditer((AUTH / name).read_text())
    ]
    assert found == []


@pytest.mark.parametrize(
    ("service", "topic"),
    [("preferences", PREFERENCES_COMMANDS), ("contacts", CONTACTS_COMMANDS)],
)
def test_the_subscriber_admits_what_the_service_runs(service: str, topic: str) -> None:
    """The running path admits by the subscriber's annotation; the service's own `execute`
    (the bytes-level entry the integration tests drive) by its `commands` adapter: the two
    must name the same commands, or one path would take what the other refuses."""
    entrypoints = importlib.import_module(f"services.{service}.entrypoints")
    flows = importlib.import_module(f"services.{service}.flows")
    intake = entrypoints.command_intake(SETTINGS, lambda: None)
    owner = next(
        cls
        for cls in vars(flows).values()
        if isinstance(cls, type) and issubclass(cls, CommandOwner) and cls is not CommandOwner
    )
    assert intake.admits[topic].json_schema() == owner.commands.json_schema()

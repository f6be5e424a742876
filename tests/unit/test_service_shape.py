"""preferences and contacts read the one shape of every service (docs/architecture.md):
domain, flows, adapters, entrypoints, bootstrap, main, and SQL only in adapters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHAPE = ("domain.py", "flows.py", "adapters.py", "entrypoints.py", "bootstrap.py", "main.py")
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")


@pytest.mark.parametrize("service", ["preferences", "contacts"])
def test_the_service_has_the_one_shape(service: str) -> None:
    folder = ROOT / "services" / service
    modules = {p.name for p in folder.glob("*.py")} - {"__init__.py"}
    assert modules == set(SHAPE)


@pytest.mark.parametrize("service", ["preferences", "contacts"])
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

"""`--help` answers at every level of the command, as a user types it: no org, no settings,
no running system needed — and it documents the exit statuses a script relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from portal_mfa.cli.main import app


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every group and command of `portal-mfa`, as the words typed before `--help`."""

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


PATHS = list(command_paths())


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No PORTAL_MFA_* setting and a dev state of its own: help must need none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    env |= {"TMPDIR": str(tmp_path), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "portal_mfa", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_walk_finds_the_nested_commands() -> None:
    # The test below is only as good as this list.
    assert ("admin", "mfa", "enable") in PATHS
    assert ("admin", "contacts", "add") in PATHS
    assert ("audit", "verify") in PATHS
    assert len(PATHS) > 20


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "portal-mfa")
def test_help_answers_at_every_level(tmp_path: Path, path: tuple[str, ...]) -> None:
    done = run_cli(tmp_path, *path, "--help")
    assert done.returncode == 0, done.stderr
    assert f"Usage: portal-mfa {' '.join(path)}".rstrip() in done.stdout
    assert not done.stderr


@pytest.mark.parametrize("path", [(), ("admin",)], ids=["portal-mfa", "admin"])
def test_help_documents_every_exit_status(tmp_path: Path, path: tuple[str, ...]) -> None:
    text = " ".join(run_cli(tmp_path, *path, "--help").stdout.split())
    for status in ("0 done", "1 rejected", "2 bad input", "3 cannot reach", "4 no answer"):
        assert status in text
    assert "5 bad or missing PORTAL_MFA_* setting" in text


def test_an_admin_command_without_its_org_is_bad_input(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "admin", "mfa", "enable")
    assert done.returncode == 2
    assert "--org" in done.stderr


def test_the_readme_documents_every_exit_status() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    rows = {line.split("|")[1].strip() for line in readme.splitlines() if line.startswith("| `")}
    assert {"`0`", "`1`", "`2`", "`3`", "`4`", "`5`"} <= rows

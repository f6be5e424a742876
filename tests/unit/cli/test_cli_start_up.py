"""`portal-mfa` starts fast: importing the command imports none of the service stack.

Typing `portal-mfa --help`, or an admin command that reads over HTTP, must not pay for
the Kafka clients, the database driver, the web framework or the tracing SDK (together
~0.5 s of imports on the 2-core machine of docs/performance.md): each command imports
what it uses. Checked in a fresh interpreter, since this test process has them loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal_mfa.cli.exit_codes import BAD_SETTING
from tests.cli_imports import NOT_FOR_A_COMMAND, heavy_modules

# The heavy ones, and the two slow pure-Python ones only settings and credentials need.
HEAVY = (
    "faststream",
    "aiokafka",
    "asyncpg",
    "fastapi",
    "opentelemetry.sdk",
    "pydantic_settings",
    "jwt",
)
# Nor does `--help` need the event loop, an HTTP client or progress bars (~30 ms together).
NOT_FOR_HELP = ("asyncio", "urllib.request", "rich.progress")

_PROBE = """
import json, sys
import portal_mfa.cli.main
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {roots})))
"""


def _loaded_after_import(module_roots: set[str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(roots=sorted(module_roots))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_importing_the_cli_loads_none_of_the_heavy_modules() -> None:
    loaded = _loaded_after_import({h.split(".")[0] for h in HEAVY})
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(f"{h}.") for h in HEAVY))
    assert heavy == [], f"imported at start-up by portal_mfa.cli.main: {heavy}"


def test_the_probe_sees_a_heavy_import_when_there_is_one() -> None:
    # The check above could pass by looking at the wrong thing; the same probe, after
    # a module that does import them, must see them.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, shared.command_service;"
            " print('faststream' in sys.modules, 'aiokafka' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["True", "True"]


def test_a_bad_setting_still_exits_with_its_status_and_names_the_variable(
    tmp_path: Path,
) -> None:
    # The settings module is imported lazily now; its error must still become one line
    # and the bad-setting status, not a traceback.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    env |= {"TMPDIR": str(tmp_path), "PORTAL_MFA_AUTH_PORT": "not-a-port"}
    done = subprocess.run(
        [sys.executable, "-m", "portal_mfa", "admin", "--org", "acme", "mfa", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == BAD_SETTING, done.stderr
    assert "PORTAL_MFA_AUTH_PORT" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["admin", "--help"]])
def test_help_answers_without_the_heavy_modules(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    env |= {"TMPDIR": str(tmp_path)}
    probe = (
        "import runpy, sys, atexit, json\n"
        f"sys.argv = ['portal-mfa', *{argv!r}]\n"
        f"heavy = {list(HEAVY + NOT_FOR_HELP)!r}\n"
        "def report():\n"
        "    found = [h for h in heavy if h in sys.modules]\n"
        "    print('HEAVY=' + json.dumps(found), file=sys.stderr)\n"
        "atexit.register(report)\n"
        "runpy.run_module('portal_mfa', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY="))
    assert json.loads(line.removeprefix("HEAVY=")) == []


_COMMAND_PROBE = """
import asyncio, json, sys
import portal_mfa.cli.main
from portal_mfa.admin_credentials import DevIssuer
from portal_mfa.command_client import CommandClient
from shared.admin_identity import AssertionIssuer
from shared.contracts import CommandReply, EnableMfaPolicy, ResetPortalMfa
from shared.read_your_writes import WritePosition
from shared.settings import load_settings

issuer = DevIssuer(AssertionIssuer.generate(key_id="k", issuer="dev"), "dev-admin")
signed = [issuer.sign(EnableMfaPolicy(org_id="acme")),
          issuer.sign(ResetPortalMfa(org_id="acme", contact_id="c-1"))]
assert all(command.assertion.count(".") == 2 for command in signed)
reply = CommandReply.model_validate_json(
    '{"command_id": null, "ok": true, "result": {"position": "org_preferences:2:acme"}}')
WritePosition.parse(reply.result["position"])

async def build() -> None:
    CommandClient(load_settings())  # made, not started: no broker here

asyncio.run(build())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {roots})))
"""


def test_an_admin_command_loads_neither_the_service_stack_nor_pyjwt(tmp_path: Path) -> None:
    # What `portal-mfa admin … mfa enable` does short of the broker: settings, signing the
    # command with the dev issuer, a reply and its write position, the Kafka client made.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_MFA_", "OTEL_"))}
    env |= {"TMPDIR": str(tmp_path)}
    roots = sorted({h.split(".")[0] for h in NOT_FOR_A_COMMAND} | {"aiokafka"})
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND_PROBE.replace("{roots}", repr(roots))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "aiokafka" in loaded  # the probe did reach the Kafka client
    heavy = heavy_modules(loaded)
    assert heavy == [], f"loaded by an admin command: {heavy}"

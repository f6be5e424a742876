"""deploy/kafka-acls.sh grants each principal exactly what its code needs (DESIGN.md §11).

The script runs here against stand-in Kafka tools that record their arguments; what it
grants is compared with the topics and groups the code uses, and with the table in
docs/security.md, so none of the three can drift from the others.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.audit.bootstrap import AUDIT_GROUP
from services.auth.main import PROJECTION_GROUP
from services.auth.projection import TOPICS as AUTH_PROJECTION_TOPICS
from shared.contracts import (
    ADMIN_REPLIES,
    ALL_TOPICS,
    AUTH_EVENTS,
    CONTACTS_COMMANDS,
    CONTACTS_EVENTS,
    DEADLETTER,
    EVENT_TOPICS,
    PREFERENCES_COMMANDS,
    PREFERENCES_EVENTS,
)

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "kafka-acls.sh"
SECURITY_DOC = ROOT / "docs" / "security.md"
SERVICES = ("preferences", "contacts", "auth", "audit", "console")
PASSWORDS = {service: f"{service}-pw-{'x' * 20}" for service in SERVICES}
ADMIN_PASSWORD = "admin-pw-0123456789abcdef"
SEP = "\x1f"

STUB = f"""#!/usr/bin/env bash
{{ printf '%s{SEP}' "$(basename "$0" .sh)" "$@"; printf '\\n'; }} >> "$CALLS"
"""


@dataclass(frozen=True)
class Grants:
    writes: frozenset[str]
    reads: frozenset[str]
    groups: frozenset[str]


# What the code uses: shared/command_service.py joins `portal-mfa-<name>`.
NEEDED = {
    "preferences": Grants(
        frozenset({PREFERENCES_EVENTS, ADMIN_REPLIES, DEADLETTER}),
        frozenset({PREFERENCES_COMMANDS}),
        frozenset({"portal-mfa-preferences"}),
    ),
    "contacts": Grants(
        frozenset({CONTACTS_EVENTS, ADMIN_REPLIES, DEADLETTER}),
        frozenset({CONTACTS_COMMANDS}),
        frozenset({"portal-mfa-contacts"}),
    ),
    "auth": Grants(
        frozenset({AUTH_EVENTS, DEADLETTER}),
        frozenset(AUTH_PROJECTION_TOPICS),
        frozenset({PROJECTION_GROUP}),
    ),
    "audit": Grants(frozenset({DEADLETTER}), frozenset(EVENT_TOPICS), frozenset({AUDIT_GROUP})),
    "console": Grants(
        frozenset({PREFERENCES_COMMANDS, CONTACTS_COMMANDS}),
        frozenset({ADMIN_REPLIES}),
        frozenset(),
    ),
}


@dataclass
class Run:
    returncode: int
    stderr: str
    calls: list[list[str]]

    def of(self, tool: str) -> Iterator[list[str]]:
        return (call[1:] for call in self.calls if call[0] == tool)


def option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def run_script(tmp_path: Path, **overrides: str | None) -> Run:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("kafka-acls", "kafka-configs", "kafka-topics"):
        stub = bin_dir / f"{tool}.sh"
        stub.write_text(STUB)
        stub.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "KAFKA_BIN": str(bin_dir),
        "CALLS": str(calls),
        "TMPDIR": str(tmp_path),
        "PORTAL_MFA_KAFKA_BOOTSTRAP": "kafka:9092",
        "PORTAL_MFA_KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PORTAL_MFA_KAFKA_PARTITIONS": "6",
        "PORTAL_MFA_KAFKA_REPLICATION_FACTOR": "3",
    }
    env |= {f"PORTAL_MFA_{s.upper()}_KAFKA_PASSWORD": pw for s, pw in PASSWORDS.items()}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    lines = calls.read_text().splitlines()
    return Run(done.returncode, done.stderr, [line.split(SEP)[:-1] for line in lines])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    done = run_script(tmp_path_factory.mktemp("kafka-acls"))
    assert done.returncode == 0, done.stderr
    return done


def acls(run: Run) -> set[tuple[str, str, str, str, str]]:
    """(principal, operation, resource type, name, pattern) of every ACL added."""
    found = set()
    for args in run.of("kafka-acls"):
        assert "--add" in args and "--remove" not in args
        (principal,) = option(args, "--allow-principal")
        (operation,) = option(args, "--operation")
        kinds = [kind for kind in ("--topic", "--group", "--cluster") if kind in args]
        assert len(kinds) == 1, args
        (name,) = option(args, kinds[0])
        pattern = (option(args, "--resource-pattern-type") or ["literal"])[0]
        found.add((principal, operation, kinds[0][2:], name, pattern))
    return found


def granted(run: Run) -> dict[str, Grants]:
    by_principal: dict[str, dict[str, set[str]]] = {}
    for principal, operation, kind, name, pattern in acls(run):
        service = principal.removeprefix("User:portal-mfa-")
        entry = by_principal.setdefault(service, {"Write": set(), "Read": set(), "group": set()})
        if (operation, kind, name, pattern) == ("Describe", "topic", "portal.", "prefixed"):
            continue
        if operation == "DescribeConfigs":
            continue  # test_the_services_may_read_event_topic_retention
        assert pattern == "literal", (principal, name)
        entry["group" if kind == "group" else operation].add(name)
    return {
        service: Grants(frozenset(e["Write"]), frozenset(e["Read"]), frozenset(e["group"]))
        for service, e in by_principal.items()
    }


def test_each_principal_gets_exactly_what_its_code_uses(run: Run) -> None:
    assert granted(run) == NEEDED


def test_only_these_operations_and_no_wildcards(run: Run) -> None:
    for principal, operation, kind, name, pattern in acls(run):
        assert principal in {f"User:portal-mfa-{s}" for s in SERVICES}
        assert operation in {"Read", "Write", "Describe", "DescribeConfigs"}, (principal, operation)
        assert kind in {"topic", "group"}
        assert name != "*"
        # Describe (topic names only) is the one prefixed grant, and everyone has it.
        assert (pattern == "prefixed") == (operation == "Describe")
    described = {p for p, op, *_ in acls(run) if op == "Describe"}
    assert described == {f"User:portal-mfa-{s}" for s in SERVICES}


def test_the_services_may_read_event_topic_retention(run: Run) -> None:
    # Every service checks at start that no event topic would delete events
    # (portal_mfa/serve.py, check_event_retention); Describe does not cover DescribeConfigs,
    # and without it a service refuses to start. The console runs no such check.
    described = {
        (principal, kind, name, pattern)
        for principal, operation, kind, name, pattern in acls(run)
        if operation == "DescribeConfigs"
    }
    assert described == {
        (f"User:portal-mfa-{service}", "topic", topic, "literal")
        for service in ("preferences", "contacts", "auth", "audit")
        for topic in EVENT_TOPICS
    }


def test_an_event_topic_is_written_by_its_owner_alone(run: Run) -> None:
    owners = {PREFERENCES_EVENTS: "preferences", CONTACTS_EVENTS: "contacts", AUTH_EVENTS: "auth"}
    for topic, owner in owners.items():
        assert {s for s, g in granted(run).items() if topic in g.writes} == {owner}


def test_each_user_gets_its_own_scram_sha_512_password(run: Run) -> None:
    users = {}
    for args in run.of("kafka-configs"):
        if option(args, "--entity-type") == ["users"]:
            (name,) = option(args, "--entity-name")
            (config,) = option(args, "--add-config")
            users[name] = config
    assert users == {
        f"portal-mfa-{s}": f"SCRAM-SHA-512=[iterations=8192,password={PASSWORDS[s]}]"
        for s in SERVICES
    }


def test_passwords_go_only_where_they_belong(run: Run) -> None:
    for call in run.calls:
        text = " ".join(call)
        assert ADMIN_PASSWORD not in text
        is_user = call[0] == "kafka-configs" and option(call, "--entity-type") == ["users"]
        for password in PASSWORDS.values():
            assert (password in text) <= is_user, call[0]


def test_the_admin_login_file_is_gone_after_the_run(run: Run) -> None:
    config_files = {path for call in run.calls for path in option(call, "--command-config")}
    assert len(config_files) == 1
    assert not Path(config_files.pop()).exists()


def test_topics_are_made_and_event_topics_kept_forever(run: Run) -> None:
    created = {}
    for args in run.of("kafka-topics"):
        if "--create" in args:
            assert "--if-not-exists" in args
            (name,) = option(args, "--topic")
            created[name] = (option(args, "--partitions"), option(args, "--replication-factor"))
    single = {ADMIN_REPLIES, DEADLETTER}
    assert created == {t: (["1" if t in single else "6"], ["3"]) for t in ALL_TOPICS}
    retention = {
        option(args, "--entity-name")[0]: option(args, "--add-config")[0]
        for args in run.of("kafka-configs")
        if option(args, "--entity-type") == ["topics"]
    }
    assert retention == dict.fromkeys(EVENT_TOPICS, "retention.ms=-1,retention.bytes=-1")


@pytest.mark.parametrize("service", SERVICES)
def test_a_missing_password_stops_it_before_any_change(tmp_path: Path, service: str) -> None:
    variable = f"PORTAL_MFA_{service.upper()}_KAFKA_PASSWORD"
    done = run_script(tmp_path, **{variable: None})
    assert done.returncode == 2
    assert variable in done.stderr
    assert done.calls == []


def test_a_password_kafka_configs_would_split_is_refused_unquoted(tmp_path: Path) -> None:
    bad = "abc,iterations=1,password=zzzzzzzzzzzzzz"
    done = run_script(tmp_path, PORTAL_MFA_AUTH_KAFKA_PASSWORD=bad)
    assert done.returncode == 2
    assert "PORTAL_MFA_AUTH_KAFKA_PASSWORD" in done.stderr
    assert bad not in done.stderr
    assert done.calls == []


def test_without_a_super_user_it_stops(tmp_path: Path) -> None:
    done = run_script(tmp_path, PORTAL_MFA_KAFKA_ADMIN_PASSWORD=None)
    assert done.returncode == 2
    assert "PORTAL_MFA_KAFKA_ADMIN_PASSWORD" in done.stderr


# --- the table in docs/security.md ---------------------------------------------------------


def documented() -> dict[str, Grants]:
    """The ACL table under "## The broker": principal | writes | reads | consumer group."""
    section = SECURITY_DOC.read_text().split("\n## The broker\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `portal-mfa-")]
    table = {}
    for row in rows:
        principal, writes, reads, groups = (
            frozenset(re.findall(r"`([^`]+)`", cell)) for cell in row.strip("|").split("|")[:4]
        )
        (name,) = principal
        table[name.removeprefix("portal-mfa-")] = Grants(writes, reads, groups)
    return table


def test_the_documented_table_is_what_the_script_grants(run: Run) -> None:
    assert documented() == granted(run)

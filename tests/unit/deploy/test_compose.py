"""docker-compose.yml: a valid Compose file whose Kafka authenticates everyone and
authorizes by ACL, each service as its own principal, with no password written in it.

No Docker engine runs the tests: the file is checked against the Compose specification
(check-jsonschema ships it, so this runs offline) and read as data.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("preferences", "contacts", "auth", "audit", "console")
# `${NAME:?message}`: compose refuses to start while NAME is unset or empty.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]+\}$")


def check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return loaded["services"]


def test_it_is_a_valid_compose_file() -> None:
    done = check_compose_spec(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("depends_on:", "depend_on:", 1))
    assert check_compose_spec(broken).returncode != 0


def test_kafka_authenticates_every_listener_and_authorizes_by_acl(
    compose: dict[str, Any],
) -> None:
    env = compose["kafka"]["environment"]
    protocols = {
        entry.split(":")[1] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    }
    assert protocols <= {"SASL_PLAINTEXT", "SASL_SSL", "SSL"}
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert (
        env["KAFKA_AUTHORIZER_CLASS_NAME"]
        == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_no_kafka_password_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose.items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key and "KAFKA" in key:
                assert REQUIRED.match(str(value)), (name, key)
    jaas = compose["kafka"]["environment"]["KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG"]
    for password in re.findall(r'(?:password|user_admin)="([^"]*)"', jaas):
        assert REQUIRED.match(password)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_its_own_principal(compose: dict[str, Any], service: str) -> None:
    env = compose[service]["environment"]
    assert env["PORTAL_MFA_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["PORTAL_MFA_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["PORTAL_MFA_KAFKA_USERNAME"] == f"portal-mfa-{service}"
    variable = f"PORTAL_MFA_{service.upper()}_KAFKA_PASSWORD"
    password = REQUIRED.match(env["PORTAL_MFA_KAFKA_PASSWORD"])
    assert password and password["name"] == variable
    # ...the password kafka-init gave that user.
    assert compose["kafka-init"]["environment"][variable] == env["PORTAL_MFA_KAFKA_PASSWORD"]
    assert compose[service]["depends_on"]["kafka-init"] == {
        "condition": "service_completed_successfully"
    }


def test_the_console_gets_no_service_key(compose: dict[str, Any]) -> None:
    env = compose["console"]["environment"]
    assert not {"PORTAL_MFA_SECRET_KEYS", "PORTAL_MFA_SIGNING_KEY"} & set(env)

"""docker-compose.yml: a valid Compose file whose Kafka authenticates everyone and
authorizes by ACL, each service as its own principal, with no password written in it.

No Docker engine runs the tests: the file is checked against the Compose specification
(check-jsonschema ships it, so this runs offline) and read as data.
"""

from __future__ import annotations

import ipaddress
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


# --- what it takes to run: health, restarts, order, state ---------------------------------

APPS = ("preferences", "contacts", "auth", "audit")
LONG_RUNNING = ("kafka", "postgres", *APPS)
PORTS = {"auth": 8000, "preferences": 8001, "contacts": 8002, "audit": 8003}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return loaded


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_is_checked_and_restarted(
    compose: dict[str, Any], name: str
) -> None:
    service = compose[name]
    check = service["healthcheck"]
    assert not check.get("disable"), name
    assert check["test"] and check.get("interval") and check.get("retries"), name
    assert service["restart"] in {"always", "unless-stopped", "on-failure"}, name


@pytest.mark.parametrize("name", APPS)
def test_a_service_is_checked_on_its_health_endpoint(compose: dict[str, Any], name: str) -> None:
    test = compose[name]["healthcheck"]["test"]
    assert test == ["CMD", "python", "-m", "portal_mfa.probe", "/healthz"]
    assert compose[name]["command"] == ["portal-mfa", "serve", name]
    assert compose[name]["ports"] == [f"{PORTS[name]}:{PORTS[name]}"]


def test_postgres_is_healthy_only_once_it_listens_on_tcp(compose: dict[str, Any]) -> None:
    # During first-time init PostgreSQL listens on its socket only; -h makes the check wait
    # for the real start, after the logins and databases exist.
    command = compose["postgres"]["healthcheck"]["test"][-1]
    assert "pg_isready" in command
    assert " -h " in f" {command} "


def test_every_dependency_waits_for_a_condition(compose: dict[str, Any]) -> None:
    for name, service in compose.items():
        for needed, rule in service.get("depends_on", {}).items():
            assert needed in compose, (name, needed)
            assert rule["condition"] in {"service_healthy", "service_completed_successfully"}
    for name in APPS:
        assert compose[name]["depends_on"] == {
            "kafka-init": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
        }
    assert compose["kafka-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}


def test_broker_and_database_keep_their_data_on_volumes(document: dict[str, Any]) -> None:
    services = document["services"]
    log_dir = services["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dir}" in services["kafka"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert set(document["volumes"]) == {"kafka-data", "postgres-data"}


def test_the_services_run_read_only_without_capabilities(compose: dict[str, Any]) -> None:
    for name in APPS:
        service = compose[name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]


def test_every_kafka_listener_has_a_protocol(compose: dict[str, Any]) -> None:
    env = compose["kafka"]["environment"]
    mapped = dict(
        entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    named = {
        listener.split("://")[0]
        for key in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS")
        for listener in env[key].split(",")
    }
    named |= {env["KAFKA_CONTROLLER_LISTENER_NAMES"], env["KAFKA_INTER_BROKER_LISTENER_NAME"]}
    assert named <= set(mapped), named - set(mapped)
    # KRaft, one node that is its own controller quorum.
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")


def test_topics_are_made_once_by_the_acl_script(compose: dict[str, Any]) -> None:
    init = compose["kafka-init"]
    assert init["entrypoint"] == ["bash", "/opt/portal-mfa/kafka-acls.sh"]
    assert init["volumes"] == ["./deploy/kafka-acls.sh:/opt/portal-mfa/kafka-acls.sh:ro"]
    assert init["restart"] == "no"
    # One node: a replication factor above 1 could not be met.
    assert str(init["environment"]["PORTAL_MFA_KAFKA_REPLICATION_FACTOR"]) == "1"


# --- who sees which secret ------------------------------------------------------------------

REFERENCE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)")
OWNERS = ("preferences", "contacts", "auth", "audit", "console")


def referenced(service: dict[str, Any]) -> set[str]:
    return {
        m["name"]
        for v in service.get("environment", {}).values()
        for m in REFERENCE.finditer(str(v))
    }


def secrets_of(owner: str) -> set[str]:
    prefix = f"PORTAL_MFA_{owner.upper()}_"
    return {prefix + kind for kind in ("KAFKA_PASSWORD", "DB_PASSWORD", "SIGNING_KEY")}


@pytest.mark.parametrize("name", [*APPS, "console"])
def test_no_service_sees_another_services_secret(compose: dict[str, Any], name: str) -> None:
    seen = referenced(compose[name])
    for other in OWNERS:
        if other != name:
            assert not seen & secrets_of(other), (name, seen & secrets_of(other))
    assert not seen & {"PORTAL_MFA_KAFKA_ADMIN_PASSWORD", "PORTAL_MFA_POSTGRES_PASSWORD"}


def test_each_service_gets_exactly_its_keys(compose: dict[str, Any]) -> None:
    keys = {
        "PORTAL_MFA_SECRET_KEYS",
        "PORTAL_MFA_SECRET_KEY_ID",
        "PORTAL_MFA_SIGNING_KEY",
        "PORTAL_MFA_TRUSTED_SIGNERS",
    }
    given = {name: keys & set(compose[name]["environment"]) for name in APPS}
    assert given == {
        # Auth alone seals TOTP secrets; it publishes and consumes.
        "auth": keys,
        # Publishers only.
        "preferences": {"PORTAL_MFA_SIGNING_KEY"},
        "contacts": {"PORTAL_MFA_SIGNING_KEY"},
        # A consumer that publishes nothing of its own.
        "audit": {"PORTAL_MFA_TRUSTED_SIGNERS"},
    }
    for name in ("preferences", "contacts", "auth"):
        signing = REQUIRED.match(compose[name]["environment"]["PORTAL_MFA_SIGNING_KEY"])
        assert signing and signing["name"] == f"PORTAL_MFA_{name.upper()}_SIGNING_KEY"


@pytest.mark.parametrize("name", APPS)
def test_each_service_logs_in_to_its_own_database(compose: dict[str, Any], name: str) -> None:
    url = compose[name]["environment"]["PORTAL_MFA_DATABASE_URL"]
    found = re.fullmatch(r"postgresql://(\w+):(\$\{[^}]+\})@postgres:5432/(\w+)", url)
    assert found, url
    login, password, database = found.groups()
    assert login == database == f"portal_mfa_{name}"
    variable = REQUIRED.match(password)
    assert variable and variable["name"] == f"PORTAL_MFA_{name.upper()}_DB_PASSWORD"
    # ...the password the init script gave that login.
    assert compose["postgres"]["environment"][variable["name"]] == password


def test_postgres_makes_the_logins_on_first_start(compose: dict[str, Any]) -> None:
    mounts = compose["postgres"]["volumes"]
    assert "./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/10-portal-mfa.sh:ro" in mounts
    superuser = REQUIRED.match(compose["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert superuser and superuser["name"] == "PORTAL_MFA_POSTGRES_PASSWORD"


# --- the web frontends ------------------------------------------------------------------------

FRONTENDS = {
    "portal-web": ("frontends.portal_web", 8080),
    "console-web": ("frontends.admin_web", 8081),
}
SERVICE_SECRETS = {
    "PORTAL_MFA_SECRET_KEYS",
    "PORTAL_MFA_SECRET_KEY_ID",
    "PORTAL_MFA_SIGNING_KEY",
    "PORTAL_MFA_DATABASE_URL",
    "PORTAL_MFA_TRUSTED_SIGNERS",
}


@pytest.mark.parametrize("name", FRONTENDS)
def test_each_frontend_runs_checked_restarted_and_locked_down(
    compose: dict[str, Any], name: str
) -> None:
    module, port = FRONTENDS[name]
    service = compose[name]
    assert service["command"] == ["python", "-m", module]
    assert service["ports"] == [f"{port}:{port}"]
    assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "portal_mfa.probe", "/healthz"]
    assert not service["healthcheck"].get("disable")
    assert service["restart"] == "unless-stopped"
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    # Pages that call auth wait for auth to answer.
    assert service["depends_on"]["auth"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", FRONTENDS)
def test_a_frontend_gets_no_service_key_and_its_own_cookie_key(
    compose: dict[str, Any], name: str
) -> None:
    env = compose[name]["environment"]
    assert not SERVICE_SECRETS & set(env), SERVICE_SECRETS & set(env)
    key = REQUIRED.match(env["PORTAL_MFA_WEB_COOKIE_KEY"])
    assert key and key["name"] == f"PORTAL_MFA_{name.upper().replace('-', '_')}_COOKIE_KEY"
    assert not referenced(compose[name]) & {
        "PORTAL_MFA_KAFKA_ADMIN_PASSWORD",
        "PORTAL_MFA_POSTGRES_PASSWORD",
    }


def test_the_portal_talks_to_auth_over_http_alone(compose: dict[str, Any]) -> None:
    env = compose["portal-web"]["environment"]
    assert env["PORTAL_MFA_AUTH_URL"] == "http://auth:8000"
    # No broker login, no admin trust: one secret, its cookie key.
    assert not [k for k in env if "KAFKA" in k or "ADMIN" in k]
    assert referenced(compose["portal-web"]) == {"PORTAL_MFA_PORTAL_WEB_COOKIE_KEY"}
    assert set(compose["portal-web"]["depends_on"]) == {"auth"}


def test_the_console_sends_as_its_principal_and_signs_as_the_admin(
    compose: dict[str, Any],
) -> None:
    env = compose["console-web"]["environment"]
    # It publishes commands and reads their replies: the console's principal, whose
    # password kafka-init set (deploy/kafka-acls.sh gives it exactly that).
    assert env["PORTAL_MFA_KAFKA_USERNAME"] == "portal-mfa-console"
    assert env["PORTAL_MFA_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert (
        env["PORTAL_MFA_KAFKA_PASSWORD"]
        == compose["kafka-init"]["environment"]["PORTAL_MFA_CONSOLE_KAFKA_PASSWORD"]
    )
    # Each command is signed by the signed-in admin's assertion: no stored token or key.
    assert "PORTAL_MFA_ADMIN_TOKEN" not in env
    assert referenced(compose["console-web"]) == {
        "PORTAL_MFA_CONSOLE_KAFKA_PASSWORD",
        "PORTAL_MFA_ADMIN_ISSUER_KEYS",
        "PORTAL_MFA_ADMIN_ISSUER",
        "PORTAL_MFA_PORTAL_WEB_URL",
        "PORTAL_MFA_CONSOLE_WEB_COOKIE_KEY",
    }
    for service, port in (
        ("auth", 8000),
        ("preferences", 8001),
        ("contacts", 8002),
        ("audit", 8003),
    ):
        assert env[f"PORTAL_MFA_{service.upper()}_URL"] == f"http://{service}:{port}"
        assert compose["console-web"]["depends_on"][service] == {"condition": "service_healthy"}
    assert compose["console-web"]["depends_on"]["kafka-init"] == {
        "condition": "service_completed_successfully"
    }


def test_the_two_frontends_seal_with_different_keys(compose: dict[str, Any]) -> None:
    keys = {compose[name]["environment"]["PORTAL_MFA_WEB_COOKIE_KEY"] for name in FRONTENDS}
    assert len(keys) == 2


def test_auth_believes_the_portal_frontend_and_no_one_else_by_default(
    document: dict[str, Any],
) -> None:
    """Without it every browser would share the frontend's one per-address login budget;
    with the whole subnet trusted, any container could name any address."""
    compose = document["services"]
    default = compose["auth"]["environment"]["PORTAL_MFA_TRUSTED_PROXIES"]
    match = re.fullmatch(r"\$\{PORTAL_MFA_TRUSTED_PROXIES:-(?P<cidrs>[^}]*)\}", default)
    assert match, default
    trusted = [ipaddress.ip_network(c) for c in match["cidrs"].split(",")]
    portal = ipaddress.ip_address(compose["portal-web"]["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(document["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert portal in subnet
    assert trusted == [ipaddress.ip_network(f"{portal}/32")]
    assert not [name for name, svc in compose.items() if name != "portal-web" and "networks" in svc]

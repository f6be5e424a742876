"""deploy/kubernetes: valid Kubernetes objects (schemas shipped with kubernetes-validate,
so offline), and a deployment that would hold up: probes, limits, no root, no writable
root file system, a pinned image, each service alone with its own secrets."""

from __future__ import annotations

import re
import tomllib
from io import StringIO
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from frontends.admin_web.app import create_app as console
from frontends.portal_web.app import create_app as portal
from portal_mfa.serve import SERVICES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "deploy" / "kubernetes"
KUBERNETES = "1.30.0"  # the oldest release still served by the major clouds
PORTS = {"auth": 8000, "preferences": 8001, "contacts": 8002, "audit": 8003}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc]


def every_manifest() -> list[Path]:
    return [p for p in sorted(FOLDER.glob("*.yaml")) if p.name != "kustomization.yaml"] + [
        ROOT / "deploy" / "kafka-acls.yaml"
    ]


OBJECTS = {
    (doc["kind"], doc["metadata"]["name"]): doc for path in every_manifest() for doc in load(path)
}


def problems(doc: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"
    return None


@pytest.mark.parametrize("path", every_manifest(), ids=lambda p: p.name)
def test_every_object_is_valid_kubernetes(path: Path) -> None:
    for doc in load(path):
        assert problems(doc) is None, (doc["kind"], doc["metadata"]["name"], problems(doc))


def test_the_schema_check_can_fail() -> None:
    deployment = OBJECTS["Deployment", "portal-mfa-auth"]
    broken = YAML(typ="safe").load(as_text(deployment))  # a deep copy
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/x"
    assert problems(broken) is not None


def as_text(doc: dict[str, Any]) -> str:
    out = StringIO()
    YAML(typ="safe").dump(doc, out)
    return out.getvalue()


def test_kustomize_applies_every_object_but_the_secret_templates() -> None:
    kustomization = load(FOLDER / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secrets.template.yaml"}
    # The image is pinned to this release, never to a moving tag.
    assert kustomization["images"] == [{"name": "portal-mfa", "newTag": VERSION}]


def container(service: str) -> dict[str, Any]:
    deployment = OBJECTS["Deployment", f"portal-mfa-{service}"]
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_its_command_on_its_port(service: str) -> None:
    found = container(service)
    assert found["args"] == ["portal-mfa", "serve", service]
    assert found["ports"] == [{"name": "http", "containerPort": PORTS[service]}]
    assert found["image"] == f"portal-mfa:{VERSION}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_probed_on_health_and_readiness(service: str) -> None:
    found = container(service)
    assert found["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert found["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert found["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_requests_and_limits(service: str) -> None:
    resources = container(service)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_without_root_writes_or_capabilities(service: str) -> None:
    pod = OBJECTS["Deployment", f"portal-mfa-{service}"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(service)["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_service_and_a_disruption_budget(service: str) -> None:
    deployment = OBJECTS["Deployment", f"portal-mfa-{service}"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selects = deployment["spec"]["selector"]["matchLabels"]
    assert selects.items() <= labels.items()
    endpoint = OBJECTS["Service", f"portal-mfa-{service}"]
    assert endpoint["spec"]["selector"] == selects
    assert endpoint["spec"]["ports"] == [
        {"name": "http", "port": PORTS[service], "targetPort": "http"}
    ]
    budget = OBJECTS["PodDisruptionBudget", f"portal-mfa-{service}"]
    assert budget["spec"]["selector"]["matchLabels"] == selects
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def references(service: str) -> dict[str, tuple[str, str, str]]:
    """Each environment variable's source: (kind, object name, key)."""
    found = {}
    for entry in container(service)["env"]:
        source = entry.get("valueFrom", {})
        for kind in ("secretKeyRef", "configMapKeyRef"):
            if kind in source:
                found[entry["name"]] = (kind, source[kind]["name"], source[kind]["key"])
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reads_only_its_own_secrets(service: str) -> None:
    secrets = {name for kind, name, _ in references(service).values() if kind == "secretKeyRef"}
    assert secrets == {f"portal-mfa-{service}", f"portal-mfa-kafka-{service}"}
    # envFrom brings nothing secret: only the shared ConfigMap.
    assert container(service)["envFrom"] == [{"configMapRef": {"name": "portal-mfa-shared"}}]


def test_each_service_gets_exactly_its_keys() -> None:
    keys = {
        "PORTAL_MFA_SECRET_KEYS",
        "PORTAL_MFA_SECRET_KEY_ID",
        "PORTAL_MFA_SIGNING_KEY",
        "PORTAL_MFA_TRUSTED_SIGNERS",
    }
    given = {service: keys & set(references(service)) for service in SERVICES}
    assert given == {
        "auth": keys,
        "preferences": {"PORTAL_MFA_SIGNING_KEY"},
        "contacts": {"PORTAL_MFA_SIGNING_KEY"},
        "audit": {"PORTAL_MFA_TRUSTED_SIGNERS"},
    }
    shared = OBJECTS["ConfigMap", "portal-mfa-shared"]["data"]
    assert not keys & set(shared)
    assert not {k for k in shared if "PASSWORD" in k or "DATABASE_URL" in k}


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_key_read_is_in_the_template(service: str) -> None:
    for variable, (kind, name, key) in references(service).items():
        source = OBJECTS["Secret" if kind == "secretKeyRef" else "ConfigMap", name]
        assert key in source.get("stringData", source.get("data", {})), (variable, name, key)


@pytest.mark.parametrize("service", SERVICES)
def test_the_database_template_names_the_services_own_login(service: str) -> None:
    url = OBJECTS["Secret", f"portal-mfa-{service}"]["stringData"]["database-url"]
    assert re.fullmatch(rf"postgresql://portal_mfa_{service}:[^@]+@[^/]+/portal_mfa_{service}", url)


def test_the_acl_job_reads_the_kafka_passwords_the_services_use() -> None:
    job = OBJECTS["Job", "portal-mfa-kafka-acls"]["spec"]["template"]["spec"]["containers"][0]
    read = {e["valueFrom"]["secretKeyRef"]["name"] for e in job["env"] if "valueFrom" in e}
    assert {f"portal-mfa-kafka-{s}" for s in SERVICES} <= read
    for service in SERVICES:
        assert references(service)["PORTAL_MFA_KAFKA_PASSWORD"] == (
            "secretKeyRef",
            f"portal-mfa-kafka-{service}",
            "password",
        )


def test_behind_the_ingress_auth_trusts_the_proxies_it_is_told() -> None:
    # Without it, every portal user would share the ingress's per-address limits.
    assert references("auth")["PORTAL_MFA_TRUSTED_PROXIES"] == (
        "configMapKeyRef",
        "portal-mfa",
        "trusted-proxies",
    )
    ingress = OBJECTS["Ingress", "portal-mfa-auth"]
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"portal-mfa-auth"}  # only the portal API is exposed


# --- the web frontends ------------------------------------------------------------------------

FRONTENDS = {
    "portal-web": ("frontends.portal_web", 8080),
    "console-web": ("frontends.admin_web", 8081),
}
SERVICE_KEYS = {
    "PORTAL_MFA_SECRET_KEYS",
    "PORTAL_MFA_SECRET_KEY_ID",
    "PORTAL_MFA_SIGNING_KEY",
    "PORTAL_MFA_DATABASE_URL",
    "PORTAL_MFA_TRUSTED_SIGNERS",
}


def env_of(name: str) -> dict[str, Any]:
    return {
        entry["name"]: entry.get("value", entry.get("valueFrom"))
        for entry in container(name)["env"]
    }


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_each_frontend_runs_probed_limited_and_locked_down(frontend: str) -> None:
    module, port = FRONTENDS[frontend]
    found = container(frontend)
    assert found["args"] == ["python", "-m", module]
    assert found["image"] == f"portal-mfa:{VERSION}"
    assert found["ports"] == [{"name": "http", "containerPort": port}]
    assert found["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert found["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert found["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert (
        set(found["resources"]["requests"])
        == set(found["resources"]["limits"])
        == {"cpu", "memory"}
    )
    assert found["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    deployment = OBJECTS["Deployment", f"portal-mfa-{frontend}"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    selects = deployment["spec"]["selector"]["matchLabels"]
    assert OBJECTS["Service", f"portal-mfa-{frontend}"]["spec"] == {
        "selector": selects,
        "ports": [{"name": "http", "port": port, "targetPort": "http"}],
    }
    budget = OBJECTS["PodDisruptionBudget", f"portal-mfa-{frontend}"]["spec"]
    assert budget["selector"]["matchLabels"] == selects
    assert budget["minAvailable"] < deployment["spec"]["replicas"]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_frontend_gets_no_service_key_and_its_own_cookie_key(frontend: str) -> None:
    env = env_of(frontend)
    assert not SERVICE_KEYS & set(env)
    assert references(frontend)["PORTAL_MFA_WEB_COOKIE_KEY"] == (
        "secretKeyRef",
        f"portal-mfa-{frontend}",
        "cookie-key",
    )
    assert "cookie-key" in OBJECTS["Secret", f"portal-mfa-{frontend}"]["stringData"]
    for variable, (kind, name, key) in references(frontend).items():
        source = OBJECTS["Secret" if kind == "secretKeyRef" else "ConfigMap", name]
        assert key in source.get("stringData", source.get("data", {})), (variable, name, key)


def test_the_portal_reads_one_secret_and_talks_to_auth_alone() -> None:
    secrets = {
        name for kind, name, _ in references("portal-web").values() if kind == "secretKeyRef"
    }
    assert secrets == {"portal-mfa-portal-web"}
    assert "envFrom" not in container("portal-web")  # not even the broker's address
    env = env_of("portal-web")
    assert env["PORTAL_MFA_AUTH_URL"] == "http://portal-mfa-auth:8000"
    assert not [k for k in env if "KAFKA" in k or "ADMIN" in k]


def test_the_console_sends_as_the_console_principal_and_holds_no_admin_token() -> None:
    secrets = {
        name for kind, name, _ in references("console-web").values() if kind == "secretKeyRef"
    }
    assert secrets == {"portal-mfa-console-web", "portal-mfa-kafka-console"}
    env = env_of("console-web")
    assert env["PORTAL_MFA_KAFKA_USERNAME"] == "portal-mfa-console"
    assert "PORTAL_MFA_ADMIN_TOKEN" not in env
    shared = OBJECTS["ConfigMap", "portal-mfa-shared"]["data"]
    assert "PORTAL_MFA_ADMIN_TOKEN" not in shared and "PORTAL_MFA_ADMIN_ISSUER_KEYS" in shared
    for service in SERVICES:
        assert (
            env[f"PORTAL_MFA_{service.upper()}_URL"]
            == f"http://portal-mfa-{service}:{PORTS[service]}"
        )
    # ...the password the ACL Job gave that principal.
    job = OBJECTS["Job", "portal-mfa-kafka-acls"]["spec"]["template"]["spec"]["containers"][0]
    given = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in job["env"] if "valueFrom" in e
    }
    assert given["PORTAL_MFA_CONSOLE_KAFKA_PASSWORD"] == "portal-mfa-kafka-console"


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_frontends_ingress_routes_its_pages_and_not_its_metrics_or_probes(frontend: str) -> None:
    ingress = OBJECTS["Ingress", f"portal-mfa-{frontend}"]
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert {p["backend"]["service"]["name"] for p in paths} == {f"portal-mfa-{frontend}"}
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]

    def routed(path: str) -> bool:
        for entry in paths:
            if entry["pathType"] == "Exact" and path == entry["path"]:
                return True
            prefix = entry["path"].rstrip("/")
            if entry["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
                return True
        return False

    for hidden in ("/metrics", "/healthz", "/readyz", "/docs"):
        assert not routed(hidden), hidden
    pages = (
        [
            "/",
            "/portals/acme/login",
            "/portals/acme/challenge",
            "/static/portal.js",
            "/common/site.css",
        ]
        if frontend == "portal-web"
        else [
            "/",
            "/signin",
            "/signin/assertion",
            "/signout",
            "/orgs/acme/customers",
            "/common/site.css",
        ]
    )
    for page in pages:
        assert routed(page), page


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_every_route_of_a_frontend_that_is_a_page_is_reachable(frontend: str) -> None:
    # A page added to the app later must be routed too (or it 404s behind the ingress).
    settings = Settings(profile="dev", web_cookie_key="A" * 43 + "=")  # type: ignore[call-arg,arg-type]
    app = (portal if frontend == "portal-web" else console)(settings)
    ingress = OBJECTS["Ingress", f"portal-mfa-{frontend}"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    internal = {"/metrics", "/healthz", "/readyz"}
    for route in app.routes:
        path = getattr(route, "path", "")
        if path in internal:
            continue
        first = "/" + path.strip("/").split("/")[0] if path != "/" else "/"
        assert any(
            (p["pathType"] == "Exact" and p["path"] == path)
            or (p["pathType"] == "Prefix" and first == p["path"])
            for p in paths
        ), path

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

from portal_mfa.serve import SERVICES

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

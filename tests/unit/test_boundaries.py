"""The folder tree is the architecture: who may import whom, checked on every module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "preferences", "contacts", "audit")
# A domain module decides; it never talks to a database, a broker or the network.
IO_LIBRARIES = ("asyncpg", "aiokafka", "faststream", "fastapi", "httpx", "starlette", "uvicorn")
# The admin console speaks only the contracts in shared/.
CONSOLE = [
    "portal_mfa/cli/admin.py",
    "portal_mfa/cli/contacts.py",
    "portal_mfa/cli/audit.py",
    "portal_mfa/cli/console.py",
    "portal_mfa/command_client.py",
    "portal_mfa/admin_credentials.py",
]


def imported(path: Path) -> Iterator[str]:
    """Every module `path` imports, at any depth of its code (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = tuple(f"services.{s}" for s in SERVICES if s != service)
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules(f"services/{service}")
        for name in imported(path)
        if name.startswith(others)
    ]
    assert found == []


def test_shared_imports_no_service() -> None:
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules("shared")
        for name in imported(path)
        if name.startswith("services")
    ]
    assert found == []


def test_domain_modules_do_no_io() -> None:
    domain = [
        *modules("services/auth/domain"),
        *modules("shared/login_rule"),
        ROOT / "services/contacts/domain.py",
        ROOT / "services/preferences/domain.py",
    ]
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in domain
        for name in imported(path)
        if name.split(".")[0] in IO_LIBRARIES
    ]
    assert len(domain) > 8
    assert found == []


# auth's layers, each importing only the layers below it (issue 7's one shape).
AUTH_LAYERS = {
    "domain": ("services.auth.flows", "services.auth.adapters", "services.auth.entrypoints"),
    "adapters": ("services.auth.flows", "services.auth.entrypoints"),
    "flows": ("services.auth.entrypoints",),
}
WEB_LIBRARIES = ("fastapi", "starlette", "uvicorn", "segno")


@pytest.mark.parametrize("layer", AUTH_LAYERS)
def test_auth_layers_import_only_downwards(layer: str) -> None:
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules(f"services/auth/{layer}")
        for name in imported(path)
        if name.startswith(AUTH_LAYERS[layer])
    ]
    assert len(modules(f"services/auth/{layer}")) > 3
    assert found == []


def test_auth_flows_know_no_http() -> None:
    """Use cases raise domain errors and return domain results; the entrypoints answer."""
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules("services/auth/flows")
        for name in imported(path)
        if name.split(".")[0] in WEB_LIBRARIES or name.startswith("shared.http.problems")
    ]
    assert found == []


def test_the_console_imports_only_shared_contracts() -> None:
    found = [
        (module, name)
        for module in CONSOLE
        for name in imported(ROOT / module)
        if name.startswith("services")
    ]
    assert found == []


FRONTENDS = ("portal_web", "admin_web")


def test_no_frontend_imports_a_service() -> None:
    """A frontend is a folder like a service: it speaks HTTP (and, for the admin console,
    the command contracts of shared/), never a service's code."""
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules("frontends")
        for name in imported(path)
        if name.startswith("services")
    ]
    assert len(modules("frontends")) > 10
    assert found == []


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_no_frontend_imports_the_other(frontend: str) -> None:
    other = next(f"frontends.{f}" for f in FRONTENDS if f != frontend)
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules(f"frontends/{frontend}")
        for name in imported(path)
        if name.startswith(other)
    ]
    assert found == []


def test_the_portal_reaches_auth_only_over_http() -> None:
    """The portal has no Kafka, database or admin identity of its own."""
    found = [
        (str(path.relative_to(ROOT)), name)
        for path in modules("frontends/portal_web")
        for name in imported(path)
        if name.split(".")[0] in ("asyncpg", "aiokafka", "faststream", "portal_mfa")
        or name.startswith("shared.admin_identity")
    ]
    assert found == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from services.auth.flows import login\n")
    assert list(imported(planted)) == ["services.auth.flows"]

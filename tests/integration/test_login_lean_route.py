"""The password step's lean route (services/auth/entrypoints/http/login_route.py) answers
every request exactly as the FastAPI route that declares it does: the same status,
headers (all but the request id) and body, byte for byte, for a right and a wrong
password, an unknown email, each of the three outcomes (a session, a challenge,
enrollment), a locked second factor, the failed-password limits (per pair of contact and
client address, the address read from X-Forwarded-For through a trusted proxy),
malformed, too large and wrongly typed bodies, org ids the path pattern refuses, other
methods, and while the service is not ready.

Two apps, each over its own database set up the same way, with the same clock and the
same (counting) token source, so that even the tokens agree; the same requests go to
both. The apps are assembled as auth's is (hardened, body limit, observed, the other
lean paths).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Request

from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.passwords import hash_password
from services.auth.domain.randomness import RandomSource
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.entrypoints.http import (
    challenge_route,
    dependencies,
    login_route,
    lookup,
    portal,
)
from services.auth.entrypoints.http.body_limit import BodyLimit
from services.auth.entrypoints.http.problems import install_problem_handlers
from services.auth.flows.runtime import AuthRuntime
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.http.client_address import parse_proxies
from shared.http.hardening import harden
from shared.observability.http import HTTP_DURATION, observe
from tests.conftest import FreshDatabase
from tests.integration.movable_clock import START, MovableClock

pytestmark = pytest.mark.integration

PLAIN, WITH_MFA = "org-lean-login", "org-lean-login-mfa"
PATH = f"/v1/portals/{PLAIN}/login"
MFA_PATH = f"/v1/portals/{WITH_MFA}/login"
TEMPLATE = "/v1/portals/{org_id}/login"
RIGHT = "the-right-password"
BOX = SecretBox({"k": generate_key()}, "k")
# (contact, org, email, enrolled, second factor locked)
CONTACTS = (
    ("c-known", PLAIN, "known@example.com", False, False),
    ("c-limited", PLAIN, "limited@example.com", False, False),
    ("c-enrolled", WITH_MFA, "enrolled@example.com", True, False),
    ("c-new", WITH_MFA, "new@example.com", False, False),
    ("c-locked", WITH_MFA, "locked@example.com", True, True),
)


@dataclass
class _Ready:
    ready: bool = True


def _counting_tokens() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"token-{n:08d}-of-the-lean-login-test"


async def _app(fresh_database: FreshDatabase, name: str, *, lean: bool) -> FastAPI:
    pool = await open_pool(await fresh_database(name), min_size=1, max_size=2)
    projection = LoginProjection()
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    password_hash = hash_password(RIGHT)
    async with pool.acquire() as conn:
        await projection.create(conn)
        await conn.execute(
            f"INSERT INTO {projection.schema}.org_policies (org_id, version, mfa_enabled)"
            " VALUES ($1, 1, true)",
            WITH_MFA,
        )
        for contact_id, org_id, email, enrolled, locked in CONTACTS:
            await conn.execute(
                f"INSERT INTO {projection.schema}.contacts (contact_id, org_id, version, kind,"
                " display_name, email, portal_access, mfa_epoch, deleted)"
                " VALUES ($1, $2, 2, 'customer', 'A contact', $3, true, 0, false)",
                contact_id,
                org_id,
                email,
            )
            await conn.execute(
                "INSERT INTO accounts (contact_id, org_id, password_hash, mfa_locked_until)"
                " VALUES ($1, $2, $3, $4)",
                contact_id,
                org_id,
                password_hash,
                START + timedelta(minutes=7) if locked else None,
            )
            if enrolled:
                enrollment_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO enrollments (enrollment_id, contact_id, org_id, status,"
                    " secret_blob, mfa_epoch, enrolled_event_id, enabled_at)"
                    " VALUES ($1, $2, $3, 'enabled', $4, 0, $5, $6)",
                    enrollment_id,
                    contact_id,
                    org_id,
                    BOX.seal(totp.new_secret(), enrollment_id.bytes),
                    uuid.uuid4(),
                    START,
                )
    made = _counting_tokens()
    app = FastAPI()
    app.state.runtime = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, _Ready()),
        secret_box=BOX,
        clock=MovableClock(START),
        # httpx's ASGI transport is the peer 127.0.0.1: a proxy we trust.
        trusted_proxies=parse_proxies("127.0.0.1"),
        random=RandomSource(token=lambda: next(made)),
    )
    install_problem_handlers(app)
    harden(app)
    app.add_middleware(BodyLimit)
    observe(app, "auth")
    lookup.serve_lean(app, "auth")
    challenge_route.serve_lean(app, "auth")
    if lean:
        login_route.serve_lean(app, "auth")
    app.include_router(portal.router)
    # Counts the requests the declared route itself handles.
    app.state.declared_route_ran = 0

    async def counted(request: Request) -> AuthRuntime:
        request.app.state.declared_route_ran += 1
        runtime: AuthRuntime = request.app.state.runtime
        return runtime

    app.dependency_overrides[dependencies._runtime] = counted
    return app


@pytest.fixture
async def apps(fresh_database: FreshDatabase) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    declared = await _app(fresh_database, "login_declared", lean=False)
    lean = await _app(fresh_database, "login_lean", lean=True)
    try:
        yield declared, lean
    finally:
        await declared.state.runtime.pool.close()
        await lean.state.runtime.pool.close()


def _json(headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "content": json.dumps(fields),
        "headers": {"Content-Type": "application/json", **(headers or {})},
    }


def _from(address: str, email: str, password: str) -> dict[str, Any]:
    return _json({"X-Forwarded-For": address}, email=email, password=password)


# Well-formed logins among the requests below: the lean path answers these.
WELL_FORMED = 24


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    big = "x" * (20 * 1024)

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: the limit counts what comes
        yield b'{"email": "known@example.com", "password": "'
        yield big.encode()
        yield b'"}'

    known = "known@example.com"
    limited = "limited@example.com"
    return [
        ("POST", PATH, _json(email=known, password=RIGHT)),  # a session
        ("POST", PATH, _json(email=known, password="a-wrong-password")),
        ("POST", PATH, _json(email="nobody@example.com", password=RIGHT)),  # unknown email
        ("POST", PATH, _json(email=" Known@Example.COM ", password=RIGHT)),  # stripped, any case
        ("POST", MFA_PATH, _json(email="enrolled@example.com", password=RIGHT)),  # a challenge
        ("POST", MFA_PATH, _json(email="new@example.com", password=RIGHT)),  # enrollment
        ("POST", MFA_PATH, _json(email="locked@example.com", password=RIGHT)),  # 429, locked
        ("POST", MFA_PATH, _json(email=known, password=RIGHT)),  # another org's contact
        # Ten failures of one pair (contact, address behind the proxy) fill its window; the
        # same contact from another address, and then two X-Forwarded-For headers (read in
        # order, the last hop counts), are other pairs.
        *[("POST", PATH, _from("203.0.113.5", limited, f"wrong-{n:02d}-xx")) for n in range(10)],
        ("POST", PATH, _from("203.0.113.5", limited, RIGHT)),  # 429, Retry-After
        ("POST", PATH, _from("198.51.100.7", limited, "wrong-once-more")),  # 401
        (
            "POST",
            PATH,
            {
                "content": json.dumps({"email": limited, "password": RIGHT}),
                "headers": [
                    ("Content-Type", "application/json"),
                    ("X-Forwarded-For", "192.0.2.1"),
                    ("X-Forwarded-For", "203.0.113.5"),
                ],
            },
        ),  # 429: the pair of the last hop
        ("POST", PATH, _from("198.51.100.7", limited, RIGHT)),  # a session; clears its pair
        ("POST", PATH, _from("garbage", limited, RIGHT)),  # counted on the proxy: a session
        # Malformed, wrongly typed or too large: the app answers.
        ("POST", PATH, {"content": b'{"email": ', "headers": {"Content-Type": "application/json"}}),
        ("POST", PATH, {"content": b"", "headers": {"Content-Type": "application/json"}}),
        ("POST", PATH, {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}),
        ("POST", PATH, _json(email=known)),  # no password
        ("POST", PATH, _json(email=known, password=RIGHT, admin=True)),  # extra field
        ("POST", PATH, _json(email=known, password="a\x00b")),  # NUL
        ("POST", PATH, _json(email="a@", password=RIGHT)),  # too short
        ("POST", PATH, _json(email=known, password=12345678)),  # not a string
        ("POST", PATH, _json(email=known, password="")),
        (
            "POST",
            PATH,
            {
                "content": json.dumps({"email": known, "password": RIGHT}),
                "headers": {"Content-Type": "text/plain"},
            },
        ),
        (
            "POST",
            PATH,
            {
                "content": json.dumps({"email": known, "password": RIGHT}),
                "headers": {"Content-Type": "application/json; charset=utf-8"},
            },
        ),
        ("POST", PATH, {"content": json.dumps({"email": known, "password": RIGHT})}),
        ("POST", PATH, _json(email=known, password=big)),  # over the limit
        ("POST", PATH, {"content": chunked(), "headers": {"Content-Type": "application/json"}}),
        (
            "POST",
            PATH,
            {
                "content": b"{}",
                "headers": {"Content-Type": "application/json", "Content-Length": "x"},
            },
        ),
        # Org ids the declared path pattern refuses (a space, a newline, too long).
        ("POST", "/v1/portals/an%20org/login", _json(email=known, password=RIGHT)),
        ("POST", "/v1/portals/org%0A/login", _json(email=known, password=RIGHT)),
        ("POST", f"/v1/portals/{'o' * 101}/login", _json(email=known, password=RIGHT)),
        ("POST", f"/v1/portals/{'o' * 100}/login", _json(email=known, password=RIGHT)),  # 401
        ("GET", PATH, {}),
        ("PUT", PATH, _json(email=known, password=RIGHT)),
        ("POST", f"{PATH}/", _json(email=known, password=RIGHT)),
        ("POST", f"/v1/portals/{PLAIN}/login/more", _json(email=known, password=RIGHT)),
    ]


def _seen(answer: httpx.Response) -> tuple[object, ...]:
    headers = [(k, v) for k, v in answer.headers.multi_items() if k != "x-request-id"]
    return (answer.request.method, answer.status_code, headers, answer.content)


async def _answers(app: FastAPI) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://auth"
    ) as client:
        for method, path, given in _requests():
            found.append(_seen(await client.request(method, path, **given)))
        # And while the projection is not ready: 503 for a login, 422 for a malformed one.
        app.state.runtime.consumer.ready = False
        for given in (_json(email="known@example.com", password=RIGHT), _json(password=RIGHT)):
            found.append(_seen(await client.post(PATH, **given)))
    return found


async def test_the_lean_route_answers_as_the_declared_one(apps: tuple[FastAPI, FastAPI]) -> None:
    declared, lean = apps
    expected = await _answers(declared)
    statuses = [a[1] for a in expected]
    assert statuses[:8] == [200, 401, 401, 200, 200, 200, 429, 401], expected[:8]
    assert statuses[8:18] == [401] * 10
    assert statuses[18:23] == [429, 401, 429, 200, 200], expected[18:23]
    outcomes = [json.loads(cast(bytes, expected[n][3]))["status"] for n in (0, 3, 4, 5)]
    assert outcomes == ["authenticated", "authenticated", "mfa_required", "mfa_enrollment_required"]
    assert 413 in statuses and 422 in statuses and 405 in statuses and 503 in statuses
    assert await _answers(lean) == expected
    # The well-formed logins (and the one while not ready) were answered on the lean path;
    # the rest by the declared route.
    assert declared.state.declared_route_ran - lean.state.declared_route_ran == WELL_FORMED + 1
    # The lean route's answers were counted as the route's, in the same histogram.
    for status in ("200", "401", "429", "503"):
        labels = {"handler": TEMPLATE, "method": "POST", "status": status}
        counts = [
            app.state.metrics.get_sample_value(f"{HTTP_DURATION}_count", labels)
            for app in (declared, lean)
        ]
        assert counts[0] == counts[1] and counts[0], (status, counts)

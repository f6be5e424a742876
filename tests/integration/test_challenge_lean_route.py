"""The challenge's lean route (services/auth/entrypoints/http/challenge_route.py) answers
every request exactly as the FastAPI route that declares it does: the same status,
headers (all but the request id) and body, byte for byte, for a right, wrong, replayed
or backup code, for malformed, too large and wrongly typed bodies, unknown tokens, a
locked account, other methods, and while the service is not ready.

Two apps, each over its own database set up the same way, with the same clock and the
same (counting) token source, so that even the session tokens agree; the same requests
go to both. The apps are assembled as auth's is (hardened, body limit, observed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Request

from services.auth.adapters import enrollments, tokens
from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.backup_codes import backup_code_key, hash_backup_code
from services.auth.domain.randomness import RandomSource
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.entrypoints.http import challenge_route, dependencies, lookup, portal
from services.auth.entrypoints.http.body_limit import BodyLimit
from services.auth.entrypoints.http.problems import install_problem_handlers
from services.auth.flows.runtime import AuthRuntime
from shared.db import open_pool
from shared.http.hardening import harden
from shared.observability.http import HTTP_DURATION, observe
from tests.conftest import FreshDatabase
from tests.integration.challenge_setup import ReadyConsumer, enrolled_contact
from tests.integration.movable_clock import START, MovableClock

pytestmark = pytest.mark.integration

ORG, CONTACT = "org-lean-challenge", "c-1"
PATH = "/v1/mfa/challenge"
SECRET = totp.new_secret()
BOX = SecretBox({"k": generate_key()}, "k")
BACKUP = "backup-code-1"
RIGHT = totp.code_at(SECRET, START)
WRONG = next(c for c in ("000000", "111111") if not totp.matching_time_step(SECRET, c, START))


def _counting_tokens() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"session-token-{n:08d}-of-the-lean-challenge-test"


async def _app(fresh_database: FreshDatabase, name: str, *, lean: bool) -> FastAPI:
    pool = await open_pool(await fresh_database(name), min_size=1, max_size=2)
    projection = LoginProjection()
    enrollment_id = uuid.UUID(int=1)
    await enrolled_contact(
        pool,
        projection,
        org=ORG,
        contact=CONTACT,
        box=BOX,
        secret=SECRET,
        enrollment_id=enrollment_id,
    )
    async with pool.acquire() as conn:
        await enrollments.replace_backup_codes(
            conn, enrollment_id, [hash_backup_code(BACKUP, backup_code_key(SECRET))]
        )
        for n in range(1, 40):
            await tokens.issue(conn, "challenge", CONTACT, ORG, START, token=_token(n))
    made = _counting_tokens()
    app = FastAPI()
    app.state.runtime = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, ReadyConsumer()),
        secret_box=BOX,
        clock=MovableClock(START),
        random=RandomSource(token=lambda: next(made)),
    )
    install_problem_handlers(app)
    harden(app)
    app.add_middleware(BodyLimit)
    observe(app, "auth")
    lookup.serve_lean(app, "auth")
    if lean:
        challenge_route.serve_lean(app, "auth")
    app.include_router(portal.router)
    # Counts the requests the declared route itself handles.
    app.state.declared_route_ran = 0

    async def counted(request: Request) -> AuthRuntime:
        request.app.state.declared_route_ran += 1
        runtime: AuthRuntime = request.app.state.runtime
        return runtime

    app.dependency_overrides[dependencies._runtime] = counted
    return app


def _token(n: int) -> str:
    return f"challenge-token-{n:04d}-of-the-lean-test"


@pytest.fixture
async def apps(fresh_database: FreshDatabase) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    declared = await _app(fresh_database, "challenge_declared", lean=False)
    lean = await _app(fresh_database, "challenge_lean", lean=True)
    try:
        yield declared, lean
    finally:
        await declared.state.runtime.pool.close()
        await lean.state.runtime.pool.close()


def _json(**fields: Any) -> dict[str, Any]:
    return {"content": json.dumps(fields), "headers": {"Content-Type": "application/json"}}


def _requests() -> list[tuple[str, dict[str, Any]]]:
    big = "x" * (20 * 1024)

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: the limit counts what comes
        yield b'{"challenge_token": "'
        yield big.encode()
        yield b'", "otp": "123456"}'

    return [
        ("POST", _json(challenge_token=_token(1), otp=RIGHT)),  # passed
        ("POST", _json(challenge_token=_token(2), otp=RIGHT)),  # replayed step
        ("POST", _json(challenge_token=_token(3), backup_code=BACKUP)),  # backup code
        ("POST", _json(challenge_token=_token(4), backup_code=BACKUP)),  # used already
        ("POST", _json(challenge_token="unknown-token-0000-0000", otp=RIGHT)),
        (
            "POST",
            {"content": b'{"challenge_token": ', "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", {"content": b"", "headers": {"Content-Type": "application/json"}}),
        ("POST", {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}),
        ("POST", _json(challenge_token=_token(5))),  # no factor
        ("POST", _json(otp=RIGHT)),  # no token
        ("POST", _json(challenge_token=_token(5), otp=RIGHT, backup_code=BACKUP)),
        ("POST", _json(challenge_token=_token(5), otp=RIGHT, admin=True)),  # extra field
        ("POST", _json(challenge_token="short", otp=RIGHT)),
        ("POST", _json(challenge_token=_token(5), otp=12345678)),  # not a string
        ("POST", _json(challenge_token=_token(5), otp="12\x003456")),
        ("POST", _json(challenge_token=f"  {_token(5)}  ", otp=f" {WRONG} ")),  # stripped
        (
            "POST",
            {
                "content": json.dumps({"challenge_token": _token(6), "otp": WRONG}),
                "headers": {"Content-Type": "text/plain"},
            },
        ),
        (
            "POST",
            {
                "content": json.dumps({"challenge_token": _token(7), "otp": WRONG}),
                "headers": {"Content-Type": "application/json; charset=utf-8"},
            },
        ),
        ("POST", {"content": json.dumps({"challenge_token": _token(8), "otp": WRONG})}),
        ("POST", _json(challenge_token=_token(9), otp=big)),  # over the limit
        ("POST", {"content": chunked(), "headers": {"Content-Type": "application/json"}}),
        (
            "POST",
            {
                "content": b"{}",
                "headers": {"Content-Type": "application/json", "Content-Length": "x"},
            },
        ),
        # The account is locked by now (five failures in a row): even a right code is refused.
        *[("POST", _json(challenge_token=_token(n), otp=WRONG)) for n in (10, 11, 12)],
        ("POST", _json(challenge_token=_token(13), otp=RIGHT)),
        ("GET", {}),
        ("PUT", _json(challenge_token=_token(14), otp=RIGHT)),
        ("POST /v1/mfa/challenge/", _json(challenge_token=_token(14), otp=RIGHT)),
    ]


async def _answers(app: FastAPI) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://auth"
    ) as client:
        for method, given in _requests():
            path = PATH
            if " " in method:
                method, path = method.split(" ")
            answer = await client.request(method, path, **given)
            headers = [(k, v) for k, v in answer.headers.multi_items() if k != "x-request-id"]
            found.append((method, answer.status_code, headers, answer.content))
        # And while the projection is not ready: 503, whatever the body.
        app.state.runtime.consumer.ready = False
        for given in (_json(challenge_token=_token(15), otp=RIGHT), _json(otp=RIGHT)):
            answer = await client.post(PATH, **given)
            headers = [(k, v) for k, v in answer.headers.multi_items() if k != "x-request-id"]
            found.append(("POST", answer.status_code, headers, answer.content))
    return found


async def test_the_lean_route_answers_as_the_declared_one(apps: tuple[FastAPI, FastAPI]) -> None:
    declared, lean = apps
    expected = await _answers(declared)
    statuses = [a[1] for a in expected]
    assert statuses[:5] == [200, 401, 200, 401, 401], expected[:5]
    assert 429 in statuses and 413 in statuses and 405 in statuses and 503 in statuses
    assert json.loads(cast(bytes, expected[0][3]))["session_token"].startswith("session-token-")
    assert await _answers(lean) == expected
    # The well-formed challenges (a code or backup code to check, and the one while not
    # ready) were answered on the lean path; the rest by the declared route.
    assert declared.state.declared_route_ran - lean.state.declared_route_ran == 11
    # The lean route's answers were counted as the route's, in the same histogram.
    for status in ("200", "401", "429", "503"):
        labels = {"handler": PATH, "method": "POST", "status": status}
        counts = [
            app.state.metrics.get_sample_value(f"{HTTP_DURATION}_count", labels)
            for app in (declared, lean)
        ]
        assert counts[0] == counts[1] and counts[0], (status, counts)

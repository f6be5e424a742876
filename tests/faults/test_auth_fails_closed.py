"""auth while its PostgreSQL is down: every portal endpoint answers 503 problem+json with
Retry-After (never 500, never a weaker requirement), /readyz says why, and all of it
recovers by itself once PostgreSQL is back."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres, ensure_topics
from services.auth.main import create_app
from shared.contracts import ALL_TOPICS
from shared.settings import Settings
from tests.faults.outages import eventually, figure
from tests.signing_keys import TEST_ADMIN_ISSUER, service_keys

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

LOGIN = "/v1/portals/org-down/login"
CREDENTIALS = {"email": "nobody@example.com", "password": "not-the-password"}
REQUIREMENT = "/v1/orgs/org-down/contacts/contact-1/login-requirement"
BEARER = {"Authorization": "Bearer " + "s" * 43}


@pytest.fixture
async def auth(
    own_postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> AsyncIterator[httpx.AsyncClient]:
    await ensure_topics(own_broker.bootstrap, ALL_TOPICS)
    database_url = await own_postgres.create_database("auth")
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(
        kafka_bootstrap=own_broker.bootstrap,
        kafka_idempotence=False,
        kafka_fetch_max_wait_ms=20,
        database_url=database_url,
        secret_keys=f"k1:{key}",
        secret_key_id="k1",
        relay_poll_interval_s=0.2,
        **service_keys("auth"),
    )
    app: FastAPI = create_app(settings, database_url)
    auditor = TEST_ADMIN_ISSUER.mint(sub="auditor", org="org-down", scope="audit")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://auth",
            # For the login-requirement lookup, which needs an admin assertion for its org.
            headers={"Authorization": f"Bearer {auditor.token}"},
        ) as client,
    ):
        yield client


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["status"] == 503


async def test_auth_answers_503_with_retry_after_while_postgres_is_down_then_recovers(
    auth: httpx.AsyncClient, own_postgres: EmbeddedPostgres
) -> None:
    async def ready() -> bool:
        return (await auth.get("/readyz")).status_code == 200

    await eventually(ready, within=60, what="auth ready")
    assert (await auth.post(LOGIN, json=CREDENTIALS)).status_code == 401
    assert (await auth.get(REQUIREMENT)).status_code == 200
    metrics = (await auth.get("/metrics")).text
    assert 'portal_mfa_outbox_backlog_rows{service="auth"}' in metrics
    assert 'portal_mfa_outbox_oldest_unsent_age_seconds{service="auth"}' in metrics

    own_postgres.kill()
    killed_at = time.monotonic()
    answers: list[int] = []
    for _ in range(5):
        for call in (
            auth.post(LOGIN, json=CREDENTIALS),
            auth.get(REQUIREMENT),
            auth.get("/v1/session", headers=BEARER),
            auth.post("/v1/logout", headers=BEARER),
            auth.post("/v1/mfa/challenge", json={"challenge_token": "c" * 43, "otp": "123456"}),
            auth.post("/v1/mfa/enrollment/start", json={"enrollment_token": "e" * 43}),
        ):
            answer = await call
            answers.append(answer.status_code)
            assert_unavailable(answer)
    readyz = await auth.get("/readyz")
    assert readyz.status_code == 503
    assert int(readyz.headers["retry-after"]) > 0
    reasons = readyz.json()["reasons"]
    assert any(r.startswith("database unreachable") for r in reasons), reasons

    await own_postgres.restart()
    restarted_at = time.monotonic()

    async def login_answered() -> bool:
        answer = await auth.post(LOGIN, json=CREDENTIALS)
        return answer.status_code == 401

    answering = await eventually(login_answered, within=30, what="logins answered again")
    ready_again = await eventually(ready, within=30, what="auth ready again")
    assert (await auth.get(REQUIREMENT)).status_code == 200

    figure("auth outage: answers while PostgreSQL was down", sorted(set(answers)))
    figure("auth outage: /readyz reasons", reasons)
    figure("auth outage: down for (s)", f"{restarted_at - killed_at:.1f}")
    figure("auth outage: logins answered again after restart (s)", f"{answering:.1f}")
    figure("auth outage: ready again after restart (s)", f"{ready_again:.1f}")

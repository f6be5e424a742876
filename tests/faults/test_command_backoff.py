"""A command service while its PostgreSQL is down: the failing command is retried with
back-off (a handful of attempts, not hundreds a second), /readyz says why, and once
PostgreSQL is back the command is carried out exactly once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from portal_mfa.command_client import CommandClient, NoAnswer
from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres, ensure_topics
from services.preferences.main import create_app
from shared.contracts import ALL_TOPICS, DisableMfaPolicy, EnableMfaPolicy
from shared.settings import Settings
from tests.faults.outages import eventually, figure
from tests.signing_keys import TEST_ADMIN_ISSUER, service_keys

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

OUTAGE_S = 8.0


@pytest.fixture
async def preferences(
    own_postgres: EmbeddedPostgres, own_broker: EmbeddedBroker
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, str]]:
    await ensure_topics(own_broker.bootstrap, ALL_TOPICS)
    database_url = await own_postgres.create_database("preferences")
    settings = Settings(
        kafka_bootstrap=own_broker.bootstrap,
        kafka_idempotence=False,
        kafka_fetch_max_wait_ms=20,
        database_url=database_url,
        relay_poll_interval_s=0.2,
        **service_keys("preferences"),
    )
    app: FastAPI = create_app(settings, database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        yield client, settings, database_url


async def failed_attempts(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "portal_mfa_commands_total"
        and sample.labels.get("service") == "preferences"
        and sample.labels.get("result") == "failed"
    )


async def test_a_command_failing_on_its_database_is_retried_with_back_off(
    preferences: tuple[httpx.AsyncClient, Settings, str], own_postgres: EmbeddedPostgres
) -> None:
    http, settings, database_url = preferences
    async with CommandClient(settings) as commands:
        first = await commands.send(
            EnableMfaPolicy(org_id="org-b").signed_by(TEST_ADMIN_ISSUER, "admin-1"), timeout_s=60
        )
        assert first.ok
        assert (await http.get("/readyz")).status_code == 200

        own_postgres.kill()
        killed_at = time.monotonic()
        stuck = DisableMfaPolicy(org_id="org-b").signed_by(TEST_ADMIN_ISSUER, "admin-1")
        with pytest.raises(NoAnswer):
            await commands.send(stuck, timeout_s=OUTAGE_S)
        attempts = await failed_attempts(http)
        readyz = await http.get("/readyz")
        assert readyz.status_code == 503
        reasons = readyz.json()["reasons"]
        assert any(r.startswith("database unreachable") for r in reasons), reasons
        assert any(r.startswith("commands failing") for r in reasons), reasons
        elapsed = time.monotonic() - killed_at
        # Redelivered at once after each failure, this was ~440 attempts a second.
        assert 1 <= attempts <= 2 * elapsed, f"{attempts} attempts in {elapsed:.1f} s"

        await own_postgres.restart()
        restarted_at = time.monotonic()

    async def carried_out() -> bool:
        try:
            conn = await asyncpg.connect(database_url)
        except OSError:
            return False
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM processed_commands WHERE command_id = $1", stuck.command_id
            )
            return bool(found == 1)
        finally:
            await conn.close()

    done = await eventually(carried_out, within=40, what="the command carried out", interval=0.3)

    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    ready_again = await eventually(ready, within=30, what="ready again")
    figure("command outage: failed attempts in the outage", f"{attempts:.0f} in {elapsed:.1f} s")
    figure("command outage: /readyz reasons", reasons)
    figure("command outage: carried out after restart (s)", f"{done:.1f}")
    figure(
        "command outage: ready again after restart (s)", f"{time.monotonic() - restarted_at:.1f}"
    )
    assert ready_again >= 0

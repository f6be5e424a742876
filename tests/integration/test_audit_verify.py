"""Tamper evidence: the audit log keeps each event's signature and chains each org by hash.

Events go through the real audit consumer (real broker, real PostgreSQL); then the audit
database is edited the way someone with write access to it would: an envelope rewritten,
a signed value altered, a row deleted. `verify` must name each, and a log nobody touched
must come out clean.
"""

from __future__ import annotations

from random import Random
from typing import Any

import asyncpg
import pytest

from services.audit.adapters import SCHEMA as AUDIT_SCHEMA
from services.audit.adapters import AuditLog
from services.audit.flows import verify_log
from shared.contracts import (
    CONTACTS_EVENTS,
    DEADLETTER,
    PREFERENCES_EVENTS,
    Empty,
    MfaPolicyDisabled,
)
from shared.db import read_sql
from shared.projection import ProjectionConsumer
from shared.signing import RecordSigner
from tests.integration.streams import CAUSE, Setup, history, produce, running, until
from tests.signing_keys import TEST_TRUST

pytestmark = pytest.mark.integration

CLEAN = {"forged": 0, "gaps": 0, "chain_ok": True}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("forged", "gaps", "chain_ok")}


async def stored_log(setup: Setup, kafka_bootstrap: str) -> list[str]:
    """A genuine history stored by the audit consumer (plus a forgery it must not store)."""
    events = history(Random(7), orgs=4, contacts=40, total=600)
    await produce(setup.producer, setup.topics, events)
    forged = MfaPolicyDisabled.new(
        org_id="org-0000", aggregate_id="org-0000", aggregate_version=10_000,
        payload=Empty(), cause=CAUSE,
    )  # fmt: skip
    key, value = forged.kafka_key(), forged.to_json()
    headers = forged.kafka_headers() + RecordSigner.generate("attacker").headers(key, value)
    await setup.producer.send_and_wait(
        setup.topics[PREFERENCES_EVENTS], value=value, key=key, headers=headers
    )
    async with setup.pool.acquire() as conn:
        await conn.execute(read_sql("services.audit", "schema.sql") + AUDIT_SCHEMA)
    consumer = ProjectionConsumer(
        bootstrap=kafka_bootstrap,
        topics=[setup.topics[PREFERENCES_EVENTS], setup.topics[CONTACTS_EVENTS]],
        pool=setup.pool,
        projection=AuditLog(),
        deadletter=setup.producer,
        trust=TEST_TRUST,
        batch_size=100,
        deadletter_topic=setup.topics[DEADLETTER],
    )
    async with running(consumer) as task:

        async def all_stored() -> bool:
            return consumer.applied >= len(events) and consumer.dead_lettered >= 1

        await until(all_stored, within=60, what="the log stored", watch=[task])
    return sorted({e.org_id for e in events})


async def verify(pool: asyncpg.Pool, org: str | None = None) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await verify_log(conn, TEST_TRUST, org)


async def test_verify_finds_rewritten_altered_and_deleted_rows_and_passes_an_untouched_log(
    setup: Setup, kafka_bootstrap: str
) -> None:
    orgs = await stored_log(setup, kafka_bootstrap)
    rewritten, altered, deleted, untouched = orgs

    whole = await verify(setup.pool)
    assert whole["events_checked"] == 600, "every genuine event stored, the forgery not"
    assert summary(whole) == CLEAN
    async with setup.pool.acquire() as conn:
        chained = await conn.fetch(
            "SELECT org_id, count(*) AS n, max(chain_seq) AS top FROM audit_events GROUP BY 1"
        )
        assert all(r["n"] == r["top"] for r in chained), "each org's chain is 1..n"

        # 1. An envelope rewritten in place (what `explain` reads): epoch set back to 0.
        target = await conn.fetchrow(
            "SELECT position FROM audit_events WHERE org_id = $1 AND event_type = 'MfaReset'"
            " ORDER BY position LIMIT 1",
            rewritten,
        )
        await conn.execute(
            "UPDATE audit_events SET envelope = jsonb_set(envelope, '{payload,mfa_epoch}', '0')"
            " WHERE position = $1",
            target["position"],
        )
        # 2. The signed value itself altered (and its envelope to match).
        target2 = await conn.fetchrow(
            "SELECT position, record_value FROM audit_events WHERE org_id = $1"
            " AND event_type = 'MfaPolicyEnabled' ORDER BY position LIMIT 1",
            altered,
        )
        await conn.execute(
            "UPDATE audit_events SET record_value = $2, event_type = 'MfaPolicyDisabled',"
            " envelope = jsonb_set(envelope, '{event_type}', '\"MfaPolicyDisabled\"')"
            " WHERE position = $1",
            target2["position"],
            bytes(target2["record_value"]).replace(b"MfaPolicyEnabled", b"MfaPolicyDisabled"),
        )
        # 3. A row deleted from the middle of a contact's history.
        target3 = await conn.fetchrow(
            "SELECT position, aggregate_id FROM audit_events WHERE org_id = $1"
            " AND aggregate_type = 'contact' AND aggregate_version = 2"
            " AND EXISTS (SELECT 1 FROM audit_events later WHERE later.aggregate_id ="
            " audit_events.aggregate_id AND later.aggregate_version = 3) LIMIT 1",
            deleted,
        )
        await conn.execute("DELETE FROM audit_events WHERE position = $1", target3["position"])

    report = await verify(setup.pool, rewritten)
    assert summary(report) == {"forged": 1, "gaps": 0, "chain_ok": True}
    assert report["findings"]["forged"][0]["position"] == target["position"]
    assert "envelope" in report["findings"]["forged"][0]["reason"]

    report = await verify(setup.pool, altered)
    assert summary(report) == {"forged": 1, "gaps": 0, "chain_ok": False}
    assert report["findings"]["forged"][0]["reason"] == "bad signature"

    report = await verify(setup.pool, deleted)
    assert summary(report) == {"forged": 0, "gaps": 1, "chain_ok": False}
    assert report["findings"]["gaps"] == [
        {
            "aggregate_type": "contact",
            "aggregate_id": target3["aggregate_id"],
            "missing_versions": [2],
        }
    ]

    report = await verify(setup.pool, untouched)
    assert summary(report) == CLEAN
    assert report["events_checked"] > 0

    assert summary(await verify(setup.pool, "org-never-seen")) == CLEAN

    whole = await verify(setup.pool)
    assert whole["events_checked"] == 599
    assert summary(whole) == {"forged": 2, "gaps": 1, "chain_ok": False}


async def test_deleting_an_orgs_latest_event_breaks_its_chain_head(
    setup: Setup, kafka_bootstrap: str
) -> None:
    orgs = await stored_log(setup, kafka_bootstrap)
    async with setup.pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM audit_events WHERE position ="
            " (SELECT max(position) FROM audit_events WHERE org_id = $1)",
            orgs[0],
        )
    report = await verify(setup.pool, orgs[0])
    # The last version of an aggregate leaves no gap behind it; the chain head still knows.
    assert report["chain_ok"] is False
    assert report["findings"]["chain_breaks"][-1]["problem"] == "chain head does not match"

"""The audit log in PostgreSQL: every event stored once (by event_id) with its evidence,
and the queries its readers ask.

Beside each envelope it keeps the signed record the event arrived in (key, value bytes,
kid, signature) and chains each org's events by hash (`services.audit.domain`), in the
apply transaction, one org at a time (its chain head row is locked while it grows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.audit.domain import GENESIS, link
from shared.contracts import Event, parse_event
from shared.projection_offsets import OFFSETS_SQL
from shared.read_your_writes import AppliedVersion, WritePosition
from shared.signing import SignedRecord

SCHEMA = OFFSETS_SQL


class AuditLog:
    """A `shared.projection.Projection`: idempotent by event_id, whatever redelivers it."""

    name = "audit_log"
    offsets_table = "projection_offsets"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        if not events:
            return
        orgs = sorted({e.org_id for e in events})
        await conn.execute(
            "INSERT INTO audit_chain_heads (org_id, length, head)"
            " SELECT unnest($1::text[]), 0, $2 ON CONFLICT (org_id) DO NOTHING",
            orgs,
            GENESIS,
        )
        # Locked in one order (org_id), so two writers never wait on each other in a cycle.
        heads = {
            r["org_id"]: (r["length"], r["head"])
            for r in await conn.fetch(
                "SELECT org_id, length, head FROM audit_chain_heads"
                " WHERE org_id = ANY($1::text[]) ORDER BY org_id FOR UPDATE",
                orgs,
            )
        }
        # Read under the locks: whatever another writer stored for these orgs is visible now.
        stored = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM audit_events WHERE event_id = ANY($1::uuid[])",
                [e.event_id for e in events],
            )
        }
        rows = []
        for e in events:
            if e.event_id in stored:
                continue  # redelivered: stored once, chained once
            stored.add(e.event_id)
            record = _evidence(e)
            length, prev_hash = heads[e.org_id]
            heads[e.org_id] = (length + 1, link(prev_hash, record))
            rows.append(
                (
                    e.event_id,
                    e.topic,
                    e.event_type,
                    e.org_id,
                    e.aggregate_type,
                    e.aggregate_id,
                    e.aggregate_version,
                    e.occurred_at,
                    e.model_dump(mode="json"),
                    record.key,
                    record.value,
                    record.kid,
                    record.signature,
                    length + 1,
                    prev_hash,
                    heads[e.org_id][1],
                )
            )
        if not rows:
            return
        await conn.executemany(
            "INSERT INTO audit_events (event_id, topic, event_type, org_id, aggregate_type,"
            " aggregate_id, aggregate_version, occurred_at, envelope, record_key, record_value,"
            " signature_kid, signature, chain_seq, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            rows,
        )
        await conn.executemany(
            "UPDATE audit_chain_heads SET length = $2, head = $3 WHERE org_id = $1",
            [(org, length, head) for org, (length, head) in heads.items()],
        )


def _evidence(event: Event) -> SignedRecord:
    record = event.signed_record
    if record is None:
        # The projection consumer verifies every record before it gets here.
        raise ValueError("the audit log stores only events read from a verified record")
    return record


async def tail(
    conn: asyncpg.Connection,
    *,
    after: int = 0,
    org_id: str | None = None,
    contact_id: str | None = None,
    event_type: str | None = None,
    limit: int = 1000,
) -> list[tuple[int, dict[str, Any]]]:
    """Stored events after a position, oldest first, as (position, envelope)."""
    rows = await conn.fetch(
        "SELECT position, envelope FROM audit_events WHERE position > $1"
        " AND ($2::text IS NULL OR org_id = $2)"
        " AND ($3::text IS NULL OR aggregate_id = $3)"
        " AND ($4::text IS NULL OR event_type = $4)"
        " ORDER BY position LIMIT $5",
        after,
        org_id,
        contact_id,
        event_type,
        limit,
    )
    return [(r["position"], r["envelope"]) for r in rows]


async def history(
    conn: asyncpg.Connection, org_id: str, contact_id: str, at: datetime
) -> list[Event]:
    """The events that bear on one contact's login, up to `at`, in the order they happened."""
    rows = await conn.fetch(
        "SELECT envelope FROM audit_events WHERE org_id = $1 AND occurred_at <= $3"
        " AND (aggregate_type = 'org_preferences' OR aggregate_id = $2)"
        " ORDER BY occurred_at, aggregate_version",
        org_id,
        contact_id,
        at,
    )
    return [parse_event(r["envelope"]) for r in rows]


def applied_in(org_id: str | None) -> AppliedVersion:
    """The newest version of an aggregate stored here, for a reader of `org_id` (None:
    an operator reading every org); another org's aggregate is answered as never stored."""

    async def applied_version(conn: asyncpg.Connection, position: WritePosition) -> int | None:
        version = await conn.fetchval(
            "SELECT max(aggregate_version) FROM audit_events WHERE aggregate_id = $1"
            " AND aggregate_type = $2 AND ($3::text IS NULL OR org_id = $3)",
            position.aggregate_id,
            position.aggregate_type,
            org_id,
        )
        return int(version) if version is not None else None

    return applied_version


async def all_orgs(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT org_id FROM audit_chain_heads UNION SELECT org_id FROM audit_events"
    )
    return sorted(r["org_id"] for r in rows)


async def chained_rows(
    conn: asyncpg.Connection, org_id: str, page: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """The org's stored rows in chain order, `page` at a time (inside a transaction)."""
    cursor = await conn.cursor(
        "SELECT * FROM audit_events WHERE org_id = $1 ORDER BY chain_seq NULLS LAST, position",
        org_id,
    )
    while found := await cursor.fetch(page):
        yield found


async def chain_head(conn: asyncpg.Connection, org_id: str) -> asyncpg.Record | None:
    head: asyncpg.Record | None = await conn.fetchrow(
        "SELECT length, head FROM audit_chain_heads WHERE org_id = $1", org_id
    )
    return head

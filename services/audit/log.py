"""The audit log: every event stored once (by event_id), and the queries its readers ask."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared.events import Event, parse_event
from shared.projection_offsets import OFFSETS_SQL

SCHEMA = OFFSETS_SQL


class AuditLog:
    """A `shared.projection.Projection`: idempotent by event_id, whatever redelivers it."""

    name = "audit_log"
    offsets_table = "projection_offsets"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        await conn.executemany(
            "INSERT INTO audit_events (event_id, topic, event_type, org_id, aggregate_type,"
            " aggregate_id, aggregate_version, occurred_at, envelope)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
            [
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
                )
                for e in events
            ],
        )


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

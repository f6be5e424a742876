"""Append-only event store with optimistic concurrency, outbox in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from shared.contracts import Event, EventEnvelope, parse_event
from shared.observability.tracing import trace_headers

OUTBOX_CHANNEL = "portal_mfa_outbox"


class ConcurrencyConflict(Exception):
    """Another writer appended to the same aggregate version first."""


async def load_stream(
    conn: asyncpg.Connection, aggregate_type: str, aggregate_id: str
) -> list[Event]:
    rows = await conn.fetch(
        "SELECT envelope FROM events WHERE aggregate_type = $1 AND aggregate_id = $2"
        " ORDER BY aggregate_version",
        aggregate_type,
        aggregate_id,
    )
    return [parse_event(row["envelope"]) for row in rows]


async def append_events(
    conn: asyncpg.Connection, events: Sequence[EventEnvelope], *, wake_relay: bool = True
) -> None:
    """Store events and queue them for publishing, atomically.

    `conn` must come from `shared.db.open_pool` (it encodes jsonb). `wake_relay=False`
    leaves them to the relay's next poll instead of waking it at commit.
    """
    if not events:
        return
    try:
        # One block (a savepoint inside the caller's transaction): an event is never stored
        # without its outbox row, whatever the caller does.
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO events (event_id, aggregate_type, aggregate_id, aggregate_version,"
                " event_type, schema_version, org_id, occurred_at, envelope)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                event_rows(events),
            )
            await conn.executemany(
                "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)",
                outbox_rows(events),
            )
            if wake_relay:
                await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    except asyncpg.UniqueViolationError as exc:
        raise ConcurrencyConflict(
            f"{events[0].aggregate_type} {events[0].aggregate_id} changed concurrently"
        ) from exc


EventRow = tuple[object, ...]


def event_rows(events: Sequence[EventEnvelope]) -> list[EventRow]:
    """The `events` rows of these events, in the columns `append_events` inserts."""
    return [
        (
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            e.aggregate_version,
            e.event_type,
            e.schema_version,
            e.org_id,
            e.occurred_at,
            e.model_dump(mode="json"),
        )
        for e in events
    ]


def outbox_rows(events: Sequence[EventEnvelope]) -> list[EventRow]:
    """Their `outbox` rows (topic, key, value, headers), as `append_events` inserts them."""
    # The trace that caused them travels with them (shared.observability.tracing).
    traced = [[name, value.decode()] for name, value in trace_headers()]
    return [
        (
            e.topic,
            e.kafka_key(),
            e.to_json(),
            [[name, value.decode()] for name, value in e.kafka_headers()] + traced,
        )
        for e in events
    ]


def headers_from_json(raw: str | list[list[str]]) -> list[tuple[str, bytes]]:
    pairs = json.loads(raw) if isinstance(raw, str) else raw
    return [(name, value.encode()) for name, value in pairs]

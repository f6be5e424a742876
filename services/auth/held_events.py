"""Events held beyond a version gap (DESIGN.md §11): the login projection's `pending_events`.

They are written in the batch's transaction, beside the rows and the offsets, so what
waits survives a restart and is rebuilt with the rest. Watched by gauges and a counter,
and by one log line when an aggregate starts waiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter, Gauge

from shared.contracts import Event, parse_event
from shared.login_rule.gapless import InOrder
from shared.login_rule.projected import ContactEvent, PolicyEvent

log = logging.getLogger(__name__)

HELD_EVENTS = Gauge(
    "portal_mfa_projection_held_events",
    "Events held beyond a version gap, waiting for the missing versions",
    ["projection"],
)
WAITING_AGGREGATES = Gauge(
    "portal_mfa_projection_aggregates_waiting",
    "Aggregates whose stream waits on a version gap (their decisions fail closed)",
    ["projection"],
)
EVENTS_HELD = Counter(
    "portal_mfa_projection_events_held",
    "Events that arrived beyond a version gap and were held",
    ["projection"],
)


def pending_sql(schema: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {schema}.pending_events (
    aggregate_id   text NOT NULL,
    aggregate_type text NOT NULL,
    version        integer NOT NULL,
    org_id         text NOT NULL,
    event_id       uuid NOT NULL,
    envelope       text NOT NULL,
    PRIMARY KEY (aggregate_id, aggregate_type, version)
);
"""


@dataclass(frozen=True)
class Waiting:
    aggregates: int
    events: int


@dataclass
class HeldChanges:
    """What one batch changes in `pending_events`, counted and logged as it is noted."""

    schema: str
    # (aggregate type, event): to be stored, and to be removed.
    hold: list[tuple[str, Event]] = field(default_factory=list)
    unhold: list[tuple[str, Event]] = field(default_factory=list)

    def note(
        self,
        kind: str,
        aggregate_id: str,
        versions: tuple[int, int],
        step: InOrder[PolicyEvent] | InOrder[ContactEvent],
    ) -> None:
        """One aggregate's step that held or released something; `versions`: before, after."""
        self.hold += ((kind, e) for e in step.newly_held)
        self.unhold += ((kind, e) for e in step.unheld)
        if step.newly_held:
            EVENTS_HELD.labels(self.schema).inc(len(step.newly_held))
        if step.started_waiting:
            log.warning(
                "projection %s: %s %s waits for version %d; holding versions %s",
                self.schema,
                kind,
                aggregate_id,
                versions[1] + 1,
                list(step.held_versions()),
            )
        elif not step.held:
            log.info(
                "projection %s: %s %s caught up from version %d to %d; nothing waits",
                self.schema,
                kind,
                aggregate_id,
                *versions,
            )


async def held_for(conn: asyncpg.Connection, schema: str, aggregate_ids: list[str]) -> list[Event]:
    """What waits for these aggregates, by version; one cheap query when nothing waits at all."""
    if not aggregate_ids or not await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {schema}.pending_events)"
    ):
        return []
    rows = await conn.fetch(
        f"SELECT envelope FROM {schema}.pending_events"
        " WHERE aggregate_id = ANY($1::text[]) ORDER BY aggregate_id, version",
        aggregate_ids,
    )
    return [parse_event(r["envelope"]) for r in rows]


async def store(conn: asyncpg.Connection, changes: HeldChanges) -> None:
    schema = changes.schema
    if changes.unhold:
        await conn.execute(
            f"DELETE FROM {schema}.pending_events"
            " WHERE (aggregate_id, aggregate_type, version) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[], $3::integer[]))",
            [e.aggregate_id for _, e in changes.unhold],
            [kind for kind, _ in changes.unhold],
            [e.aggregate_version for _, e in changes.unhold],
        )
    if changes.hold:
        await conn.execute(
            f"INSERT INTO {schema}.pending_events"
            " (aggregate_id, aggregate_type, version, org_id, event_id, envelope)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[],"
            " $5::uuid[], $6::text[]) ON CONFLICT DO NOTHING",
            [e.aggregate_id for _, e in changes.hold],
            [kind for kind, _ in changes.hold],
            [e.aggregate_version for _, e in changes.hold],
            [e.org_id for _, e in changes.hold],
            [e.event_id for _, e in changes.hold],
            [e.model_dump_json() for _, e in changes.hold],
        )
    await waiting(conn, schema)


async def waiting(conn: asyncpg.Connection, schema: str) -> Waiting:
    """How many aggregates wait on a gap, holding how many events (also set as gauges)."""
    row = await conn.fetchrow(
        "SELECT count(DISTINCT (aggregate_id, aggregate_type)) AS aggregates,"
        f" count(*) AS events FROM {schema}.pending_events"
    )
    assert row is not None
    found = Waiting(aggregates=row["aggregates"], events=row["events"])
    WAITING_AGGREGATES.labels(schema).set(found.aggregates)
    HELD_EVENTS.labels(schema).set(found.events)
    return found

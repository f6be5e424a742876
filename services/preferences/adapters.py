"""preferences' storage: an org's preferences, folded from its stream in the event store."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.preferences.domain import OrgPreferences
from shared.contracts import EventEnvelope
from shared.eventstore import append_events, load_stream


async def load_preferences(conn: asyncpg.Connection, org_id: str) -> OrgPreferences:
    return OrgPreferences.from_events(org_id, await load_stream(conn, "org_preferences", org_id))


async def append(conn: asyncpg.Connection, events: Sequence[EventEnvelope]) -> None:
    """The events, and their outbox rows, in the caller's transaction."""
    await append_events(conn, events)

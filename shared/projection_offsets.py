"""Where a projection has read up to: (topic, partition) -> next offset, beside its rows.

The offsets live in the projection's own database and are written in the same transaction
as the rows they explain (DESIGN.md §4).
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
from aiokafka import TopicPartition

OFFSETS_SQL = """
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
"""


class HasOffsets(Protocol):
    name: str
    offsets_table: str  # created from OFFSETS_SQL, usually beside the projection's tables


async def stored_offsets(
    conn: asyncpg.Connection, projection: HasOffsets, *, for_update: bool = False
) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {projection.offsets_table}"
        " WHERE projection = $1" + (" FOR UPDATE" if for_update else ""),
        projection.name,
    )
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def store_offsets(
    conn: asyncpg.Connection, projection: HasOffsets, offsets: dict[TopicPartition, int]
) -> None:
    await conn.executemany(
        f"INSERT INTO {projection.offsets_table} AS stored"
        " (projection, topic, partition, next_offset) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (projection, topic, partition)"
        # Never backwards: a late writer (a replica mid-rebalance) cannot undo progress.
        " DO UPDATE SET next_offset = GREATEST(stored.next_offset, EXCLUDED.next_offset)",
        [(projection.name, tp.topic, tp.partition, offset) for tp, offset in offsets.items()],
    )

"""Which write positions auth's login projection has applied (shared.read_your_writes).

Read from the projected rows themselves, so what is counted is what the login decision
reads: an event held beyond a version gap has not moved its row, and is not counted.
"""

from __future__ import annotations

from functools import partial

import asyncpg

from services.auth.adapters.projection import CONTACT, POLICY, LoginProjection
from shared.read_your_writes import AppliedVersion, WritePosition


async def _applied_version(
    projection: LoginProjection, org_id: str, conn: asyncpg.Connection, position: WritePosition
) -> int | None:
    # Only the reader's org: another org's contact is answered as one never applied.
    if position.aggregate_type == CONTACT:
        query = f"SELECT version FROM {projection.schema}.contacts WHERE contact_id = $1"
        version = await conn.fetchval(f"{query} AND org_id = $2", position.aggregate_id, org_id)
    elif position.aggregate_type == POLICY and position.aggregate_id == org_id:
        version = await conn.fetchval(
            f"SELECT version FROM {projection.schema}.org_policies WHERE org_id = $1", org_id
        )
    else:
        return None
    return int(version) if version is not None else None


def applied_in_org(projection: LoginProjection, org_id: str) -> AppliedVersion:
    return partial(_applied_version, projection, org_id)

"""Invitations already accepted: each one sets a password once."""

from __future__ import annotations

import asyncpg


async def is_used(conn: asyncpg.Connection, invitation_hash: str) -> bool:
    used = await conn.fetchval(
        "SELECT true FROM used_invitations WHERE invitation_hash = $1", invitation_hash
    )
    return bool(used)


async def claim(conn: asyncpg.Connection, invitation_hash: str, contact_id: str) -> bool:
    """Mark it used; False if another request used it first."""
    claimed = await conn.fetchval(
        "INSERT INTO used_invitations (invitation_hash, contact_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        invitation_hash,
        contact_id,
    )
    return bool(claimed)

"""Challenge, enrollment and session tokens: random, single-purpose, stored only as hashes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from shared.tokens import hash_token, new_token

Purpose = Literal["challenge", "enrollment", "session"]

LIFETIMES: dict[Purpose, timedelta] = {
    "challenge": timedelta(minutes=10),
    "enrollment": timedelta(minutes=10),
    "session": timedelta(hours=12),
}


@dataclass(frozen=True)
class Token:
    token_hash: str
    purpose: Purpose
    contact_id: str
    org_id: str
    enrollment_id: uuid.UUID | None
    mfa: bool
    expires_at: datetime


async def issue(
    conn: asyncpg.Connection,
    purpose: Purpose,
    contact_id: str,
    org_id: str,
    now: datetime,
    *,
    mfa: bool = False,
    token: str | None = None,
) -> tuple[str, datetime]:
    """A new token (shown once to its holder; drawn here unless given) and when it expires."""
    token = token or new_token()
    expires_at = now + LIFETIMES[purpose]
    await conn.execute(
        "INSERT INTO tokens (token_hash, purpose, contact_id, org_id, mfa, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        hash_token(token),
        purpose,
        contact_id,
        org_id,
        mfa,
        expires_at,
    )
    return token, expires_at


async def find(
    conn: asyncpg.Connection, token: str, purpose: Purpose, now: datetime, *, lock: bool = False
) -> Token | None:
    """The live token of that purpose, or None (unknown, expired, used, or another purpose)."""
    row = await conn.fetchrow(
        "SELECT token_hash, purpose, contact_id, org_id, enrollment_id, mfa, expires_at"
        " FROM tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL"
        " AND expires_at > $3" + (" FOR UPDATE" if lock else ""),
        hash_token(token),
        purpose,
        now,
    )
    return Token(**dict(row)) if row else None


async def consume(conn: asyncpg.Connection, token: Token, now: datetime) -> bool:
    """Mark used; False if another request used it first."""
    done = await conn.execute(
        "UPDATE tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        token.token_hash,
        now,
    )
    return bool(done == "UPDATE 1")


async def attach_enrollment(
    conn: asyncpg.Connection, token: Token, enrollment_id: uuid.UUID
) -> None:
    await conn.execute(
        "UPDATE tokens SET enrollment_id = $2 WHERE token_hash = $1",
        token.token_hash,
        enrollment_id,
    )


async def end_sessions(conn: asyncpg.Connection, contact_ids: list[str], now: datetime) -> None:
    """End every live token of these contacts, whatever its purpose."""
    await conn.execute(
        "UPDATE tokens SET used_at = $2 WHERE contact_id = ANY($1::text[]) AND used_at IS NULL",
        contact_ids,
        now,
    )


async def end_password_sessions(conn: asyncpg.Connection, org_id: str, now: datetime) -> None:
    """End the org's live sessions that were issued on a password alone."""
    await conn.execute(
        "UPDATE tokens SET used_at = $2 WHERE org_id = $1 AND purpose = 'session'"
        " AND NOT mfa AND used_at IS NULL",
        org_id,
        now,
    )

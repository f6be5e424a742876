"""Reads projected state and auth's enrollments, and asks the pure login decision."""

from __future__ import annotations

import asyncpg

from services.auth.domain.login_requirement import ActiveEnrollment, LoginRequirement, decide
from services.auth.projection import LoginProjection


async def active_enrollment(conn: asyncpg.Connection, contact_id: str) -> ActiveEnrollment | None:
    row = await conn.fetchrow(
        "SELECT enrollment_id, mfa_epoch, enrolled_event_id FROM enrollments"
        " WHERE contact_id = $1 AND status = 'enabled' ORDER BY enabled_at DESC LIMIT 1",
        contact_id,
    )
    return ActiveEnrollment(**dict(row)) if row else None


async def login_requirement(
    conn: asyncpg.Connection, projection: LoginProjection, org_id: str, contact_id: str
) -> LoginRequirement:
    policy = await projection.policy(conn, org_id)
    contact = await projection.contact(conn, org_id, contact_id)
    enrollment = await active_enrollment(conn, contact_id) if contact else None
    return decide(policy, contact, enrollment)

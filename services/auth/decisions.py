"""Reads projected state and auth's enrollments, and asks the pure login decision."""

from __future__ import annotations

import asyncpg

from services.auth.adapters import enrollments
from services.auth.domain.login_requirement import LoginRequirement, decide
from services.auth.projection import LoginProjection


async def login_requirement(
    conn: asyncpg.Connection, projection: LoginProjection, org_id: str, contact_id: str
) -> LoginRequirement:
    policy = await projection.policy(conn, org_id)
    contact = await projection.contact(conn, org_id, contact_id)
    enabled = await enrollments.enabled_for(conn, contact_id) if contact else None
    return decide(policy, contact, enabled.as_active() if enabled else None)

"""Reads projected state and auth's enrollments, and asks the pure login decision."""

from __future__ import annotations

import asyncpg

from services.auth.adapters import enrollments
from services.auth.projection import LoginProjection
from shared.login_rule.login_requirement import LoginRequirement, decide


async def login_requirement(
    conn: asyncpg.Connection, projection: LoginProjection, org_id: str, contact_id: str
) -> LoginRequirement:
    standing = await projection.standing(conn, org_id, contact_id)
    contact = standing.contact
    enabled = await enrollments.enabled_for(conn, contact_id) if contact else None
    return decide(standing.policy, contact, enabled.as_active() if enabled else None, standing.held)

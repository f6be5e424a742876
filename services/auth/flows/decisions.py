"""Reads projected state and auth's enrollments, and asks the pure login decision."""

from __future__ import annotations

import asyncpg

from services.auth.adapters.projection import LoginProjection
from shared.login_rule.login_requirement import LoginRequirement, decide


async def login_requirement(
    conn: asyncpg.Connection, projection: LoginProjection, org_id: str, contact_id: str
) -> LoginRequirement:
    standing = await projection.standing(conn, org_id, contact_id, with_enrollment=True)
    return decide(standing.policy, standing.contact, standing.enrollment, standing.held)

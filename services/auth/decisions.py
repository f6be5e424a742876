"""Reads projected state and auth's enrollments, and asks the pure login decision."""

from __future__ import annotations

import asyncpg

from services.auth.projection import LoginProjection
from services.auth.runtime import AuthRuntime
from shared.login_rule.login_requirement import LoginRequirement, decide


async def remembered_login_requirement(
    rt: AuthRuntime, org_id: str, contact_id: str
) -> LoginRequirement:
    """The lookup's answer: from this replica's memory while it is sure it heard every
    change (services/auth/decision_cache.py), else read, and remembered if nothing changed
    while it was read. Login's own check does not use this: it reads under the account's
    lock, in its transaction."""
    remembered = rt.decisions.get(org_id, contact_id)
    if remembered is not None:
        return remembered
    generation = rt.decisions.generation
    async with rt.pool.acquire() as conn:
        answer = await login_requirement(conn, rt.projection, org_id, contact_id)
    rt.decisions.put(org_id, contact_id, answer, generation)
    return answer


async def login_requirement(
    conn: asyncpg.Connection, projection: LoginProjection, org_id: str, contact_id: str
) -> LoginRequirement:
    standing = await projection.standing(conn, org_id, contact_id, with_enrollment=True)
    return decide(standing.policy, standing.contact, standing.enrollment, standing.held)

"""What the audit log's readers ask: a page of the log, why a contact's login requires what
it does, and `audit verify` (is the stored log what the services signed, whole, and in its
chain? The rules are in services.audit.domain)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg

from services.audit import adapters
from services.audit.domain import OrgChain, Verification, forged
from shared.login_rule.history import requirement_from_history
from shared.login_rule.login_requirement import LoginRequirement
from shared.signing import TrustMap

PAGE = 5000


async def events_page(
    conn: asyncpg.Connection,
    *,
    after: int,
    org_id: str | None,
    contact_id: str | None,
    event_type: str | None,
    limit: int,
) -> dict[str, Any]:
    """Stored envelopes after `after`, and the position to ask after next."""
    found = await adapters.tail(
        conn, after=after, org_id=org_id, contact_id=contact_id, event_type=event_type, limit=limit
    )
    return {
        "events": [envelope for _, envelope in found],
        "next": found[-1][0] if found else after,
    }


async def explain(
    conn: asyncpg.Connection, org_id: str, contact_id: str, at: datetime
) -> LoginRequirement:
    """What the contact's login required at `at`, folded from the stored events alone."""
    return requirement_from_history(
        org_id, contact_id, await adapters.history(conn, org_id, contact_id, at)
    )


async def verify_log(
    conn: asyncpg.Connection, trust: TrustMap, org_id: str | None = None
) -> dict[str, Any]:
    """Check one org's stored events, or every org's, in one snapshot of the log."""
    result = Verification()
    # One snapshot: events stored meanwhile would otherwise move a head past its rows.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        orgs = [org_id] if org_id is not None else await adapters.all_orgs(conn)
        for org in orgs:
            await _verify_org(conn, trust, org, result)
    return result.report()


async def _verify_org(
    conn: asyncpg.Connection, trust: TrustMap, org_id: str, result: Verification
) -> None:
    chain = OrgChain(org_id)
    async for page in adapters.chained_rows(conn, org_id, PAGE):
        # Signature checks are CPU work that releases the GIL: off the event loop.
        result.forged += await asyncio.to_thread(forged, trust, page)
        for row in page:
            chain.follow(row, result)
    chain.end(await adapters.chain_head(conn, org_id), result)

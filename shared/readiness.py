"""What /readyz says: ready, or not ready with every reason (DESIGN.md §4: fail closed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import asyncpg
from fastapi import Response

from shared.transient import failure_name

# How long a client should wait before asking again while a dependency is away.
RETRY_AFTER_S = 5
_PROBE_TIMEOUT_S = 2.0


async def database_problem(pool: asyncpg.Pool, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why the service's database cannot be used right now (None when it can)."""
    try:
        async with asyncio.timeout(timeout_s), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except TimeoutError:
        return f"database unreachable: no answer within {timeout_s:g} s"
    except Exception as exc:  # whatever the cause, a database that fails is not ready
        return f"database unreachable: {failure_name(exc)}"
    return None


def readiness(response: Response, problems: Iterable[str | None], **extra: Any) -> dict[str, Any]:
    """The /readyz body; 503 with Retry-After while any problem stands."""
    reasons = [p for p in problems if p is not None]
    if reasons:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return {"ready": not reasons, "reasons": reasons, **extra}

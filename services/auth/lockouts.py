"""An admin lifts a contact's lockouts: auth's reaction to `MfaReset` and `ContactUnlocked`.

A reset starts the second factor over (a new enrollment), so it clears everything the old
one earned, a disabled authenticator included. An unlock clears the lock, the back-off and
the failed-password counters of the contact's login, but not a disabled authenticator:
that one was guessed at a hundred times, and only a new enrollment (a reset) is safe.
Runs in the projection's transaction; repeating it changes nothing more.
"""

from __future__ import annotations

import asyncpg

from services.auth.adapters import password_attempts
from services.auth.adapters.password_attempts import login_key
from services.auth.projection import LoginProjection
from shared.contracts import ContactUnlocked, MfaReset


async def lift_lockouts(
    conn: asyncpg.Connection, projection: LoginProjection, event: MfaReset | ContactUnlocked
) -> None:
    reset = isinstance(event, MfaReset)
    if not reset:
        # The counters first, then the account (the order nothing else reverses).
        email = await conn.fetchval(
            f"SELECT email FROM {projection.schema}.contacts WHERE contact_id = $1 AND org_id = $2",
            event.aggregate_id,
            event.org_id,
        )
        if email:
            await password_attempts.clear_login(conn, login_key(event.org_id, email))
    await conn.execute(
        "UPDATE accounts SET mfa_failures = 0, mfa_lockouts = 0, mfa_locked_until = NULL,"
        " mfa_failures_since_success = CASE WHEN $2 THEN 0 ELSE mfa_failures_since_success END,"
        " mfa_disabled = mfa_disabled AND NOT $2"
        " WHERE contact_id = $1",
        event.aggregate_id,
        reset,
    )

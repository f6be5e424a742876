"""An admin lifts a contact's lockouts: auth's reaction to `MfaReset` and `ContactUnlocked`.

A reset starts the second factor over (a new enrollment), so it clears everything the old
one earned, a disabled authenticator included. An unlock clears the lock, the back-off and
the failed-password counters of the contact's login, but not a disabled authenticator:
that one was guessed at a hundred times, and only a new enrollment (a reset) is safe.
The account records what was lifted (`MfaLockoutLifted`; the rule: `Account.lift_lockout`).
Runs in the projection's transaction; repeating it changes nothing more and records nothing.
"""

from __future__ import annotations

import asyncpg

from services.auth.adapters import accounts, password_attempts
from services.auth.adapters.password_attempts import login_key
from services.auth.adapters.projection import LoginProjection
from shared.contracts import Cause, ContactUnlocked, MfaReset


async def lift_lockouts(
    conn: asyncpg.Connection, projection: LoginProjection, event: MfaReset | ContactUnlocked
) -> None:
    reset = isinstance(event, MfaReset)
    if not reset:
        # The counters first, then the account (the order nothing else reverses).
        found = await projection.contacts(conn, [event.aggregate_id])
        email = next((c.email for c in found if c.org_id == event.org_id), None)
        if email:
            await password_attempts.clear_login(conn, login_key(event.org_id, email))
    account = await accounts.lock_existing(conn, event.aggregate_id)
    if account is None:
        return  # never logged in: nothing to lift
    cause = Cause(
        actor="system",
        at=event.occurred_at,
        correlation_id=event.correlation_id,
        causation_id=str(event.event_id),
    )
    account.lift_lockout("reset" if reset else "unlock", cause)
    await accounts.save(conn, account)

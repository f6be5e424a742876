"""Sessions: issued after the last required factor; checked against the live contact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.auth.adapters import accounts, tokens
from services.auth.flows.refusal import Refusal
from services.auth.runtime import AuthRuntime
from shared.events import LoginSucceeded, LoginSucceededPayload

Factor = Literal["password", "totp", "backup_code"]


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "authenticated",
            "session_token": self.token,
            "expires_at": self.expires_at.isoformat(),
        }


async def issue_session(
    rt: AuthRuntime,
    conn: asyncpg.Connection,
    account: accounts.Account,
    factors: list[Factor],
    *,
    mfa: bool,
) -> Session:
    token, expires_at = await tokens.issue(
        conn, "session", account.contact_id, account.org_id, rt.clock(), mfa=mfa
    )
    account.record(
        LoginSucceeded, LoginSucceededPayload(factors=factors), rt.cause(account.contact_id)
    )
    return Session(token, expires_at)


def _no_session() -> Refusal:
    return Refusal(401, "invalid-session", "No valid session")


async def whoami(rt: AuthRuntime, session_token: str) -> dict[str, Any]:
    # A stale projection may not yet know that access was revoked or the contact deleted.
    rt.require_ready()
    async with rt.pool.acquire() as conn:
        session = await tokens.find(conn, session_token, "session", rt.clock())
        if session is None:
            raise _no_session()
        contact = await rt.projection.contact(conn, session.org_id, session.contact_id)
    # Revoked access or a deleted contact ends every live session at once.
    if contact is None or not contact.portal_access or contact.deleted:
        raise _no_session()
    return {
        "org_id": session.org_id,
        "contact_id": session.contact_id,
        "kind": contact.kind,
        "mfa": session.mfa,
    }


async def logout(rt: AuthRuntime, session_token: str) -> None:
    # Like every portal endpoint: 503 until ready, so a client has one rule to follow.
    rt.require_ready()
    async with rt.pool.acquire() as conn:
        session = await tokens.find(conn, session_token, "session", rt.clock())
        if session is None or not await tokens.consume(conn, session, rt.clock()):
            raise _no_session()

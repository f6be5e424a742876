"""Sessions: issued after the last required factor; checked against the live contact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.auth.adapters import accounts, tokens
from services.auth.domain.session_end import session_admitted
from services.auth.flows.refusal import Refusal, invalid_credentials
from services.auth.runtime import AuthRuntime
from shared.contracts import LoginSucceeded, LoginSucceededPayload
from shared.login_rule.gapless import HistoryIncomplete

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
    if account.password_hash is None:
        # Every login starts with the password, checked before the account was locked; a
        # revoke that cleared it since wins (else a later grant would revive this session).
        raise invalid_credentials()
    token, expires_at = await tokens.issue(
        conn, "session", account.contact_id, account.org_id, rt.clock(), mfa=mfa
    )
    account.record(
        LoginSucceeded, LoginSucceededPayload(factors=factors), rt.cause(account.contact_id)
    )
    return Session(token, expires_at)


def _no_session() -> Refusal:
    return Refusal(401, "invalid-session", "No valid session")


async def end_every_token(
    conn: asyncpg.Connection, contact_id: str, org_id: str, now: datetime
) -> accounts.Account:
    """End every token the contact holds, and lock its account for the caller's change.

    Flows lock in one order: a token (challenge, enrollment) first, then the account. So
    do we, which cannot deadlock with them: ending the tokens waits out a flow that holds
    one (and the token it then finds is used), and the account lock waits out a password
    login about to issue a token. The second pass ends what those issued meanwhile; from
    here on, a flow that locks the account reads the state this transaction commits.
    """
    await tokens.end_sessions(conn, [contact_id], now)
    account = await accounts.lock(conn, contact_id, org_id)
    await tokens.end_sessions(conn, [contact_id], now)
    return account


async def whoami(rt: AuthRuntime, session_token: str) -> dict[str, Any]:
    # A stale projection may not yet know that access was revoked or the contact deleted.
    rt.require_ready()
    async with rt.pool.acquire() as conn:
        session = await tokens.find(conn, session_token, "session", rt.clock())
        if session is None:
            raise _no_session()
        standing = await rt.projection.standing(conn, session.org_id, session.contact_id)
    if standing.held.contact:
        # What waits beyond the gap might be a revoke or a reset: decide nothing.
        raise HistoryIncomplete(f"contact {session.contact_id} waits beyond a version gap")
    contact = standing.contact
    # Fail closed, as the login decision does: a policy stream with a gap counts as on.
    policy_enabled = standing.policy.mfa_enabled or bool(standing.held.policy)
    # (`contact is None` is refused by the rule too; said here for the type checker.)
    if contact is None or not session_admitted(
        mfa=session.mfa, contact=contact, policy_enabled=policy_enabled
    ):
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

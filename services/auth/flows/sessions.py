"""Sessions: issued after the last required factor; checked against the live contact."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.auth.adapters import accounts, tokens
from services.auth.domain.account import Account
from services.auth.domain.errors import InvalidCredentials, NoSession
from services.auth.domain.results import CurrentSession, Factor, Session
from services.auth.domain.session_end import session_admitted
from services.auth.flows.runtime import AuthRuntime
from shared.contracts import LoginSucceeded, LoginSucceededPayload
from shared.login_rule.gapless import HistoryIncomplete


async def issue_session(
    rt: AuthRuntime,
    conn: asyncpg.Connection,
    account: Account,
    factors: list[Factor],
    *,
    mfa: bool,
    now: datetime | None = None,
) -> Session:
    now = now or rt.clock()
    session = new_session(rt, account, factors, now)
    await tokens.issue(
        conn, "session", account.contact_id, account.org_id, now, mfa=mfa, token=session.token
    )
    return session


def new_session(rt: AuthRuntime, account: Account, factors: list[Factor], now: datetime) -> Session:
    """A session for the account, `LoginSucceeded` recorded on it; the caller stores both."""
    if account.password_hash is None:
        # Every login starts with the password, checked before the account was locked; a
        # revoke that cleared it since wins (else a later grant would revive this session).
        raise InvalidCredentials()
    token = rt.random.token()
    account.record(
        LoginSucceeded, LoginSucceededPayload(factors=factors), rt.cause(account.contact_id, now)
    )
    return Session(token, now + tokens.LIFETIMES["session"])


async def end_every_token(
    conn: asyncpg.Connection, contact_id: str, org_id: str, now: datetime
) -> Account:
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


async def whoami(rt: AuthRuntime, session_token: str) -> CurrentSession:
    # A stale projection may not yet know that access was revoked or the contact deleted.
    rt.require_ready()
    async with rt.pool.acquire() as conn:
        session = await tokens.find(conn, session_token, "session", rt.clock())
        if session is None:
            raise NoSession()
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
        raise NoSession()
    return CurrentSession(session.org_id, session.contact_id, contact.kind, session.mfa)


async def logout(rt: AuthRuntime, session_token: str) -> None:
    # Like every portal endpoint: 503 until ready, so a client has one rule to follow.
    rt.require_ready()
    async with rt.pool.acquire() as conn:
        session = await tokens.find(conn, session_token, "session", rt.clock())
        if session is None or not await tokens.consume(conn, session, rt.clock()):
            raise NoSession()

"""The password step: accepting an invitation, and logging in with email and password."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.auth.adapters import accounts, hashing, invitations, password_attempts, tokens
from services.auth.adapters.accounts import LoginCandidate
from services.auth.adapters.password_attempts import Subject, login_key
from services.auth.domain.errors import (
    InvalidCredentials,
    InvalidInvitation,
    LockedOut,
    TooManyAttempts,
    WeakPassword,
)
from services.auth.domain.lockout import (
    INVITATIONS_PER_CLIENT_ADDRESS,
    PER_CLIENT_ADDRESS,
    PER_CONTACT,
    PER_CONTACT_AND_ADDRESS,
)
from services.auth.domain.passwords import DUMMY_HASH
from services.auth.domain.results import EnrollmentRequired, LoginOutcome, MfaRequired
from services.auth.flows.decisions import login_requirement
from services.auth.flows.runtime import AuthRuntime
from services.auth.flows.sessions import end_every_token, issue_session
from shared.contracts import Empty, LoginFailed, LoginFailedPayload, PortalPasswordSet
from shared.login_rule.gapless import HistoryIncomplete
from shared.tokens import hash_token

MIN_PASSWORD_LENGTH = 10


async def accept_invitation(
    rt: AuthRuntime, org_id: str, token: str, password: str, client_address: str
) -> None:
    rt.require_ready()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(MIN_PASSWORD_LENGTH)
    limits = [Subject(f"invitation:{client_address}", INVITATIONS_PER_CLIENT_ADDRESS)]
    invitation_hash = hash_token(token)
    async with rt.pool.acquire() as conn:
        now = rt.clock()
        if not await password_attempts.reserve(conn, limits, now):
            until = await password_attempts.blocked_until(conn, limits, now)
            raise TooManyAttempts(until, now)
        # The token first: an unknown, used or expired one costs no password hashing.
        await _live_invitation(rt, conn, org_id, invitation_hash)
    password_hash = await hashing.hashed(password)
    async with rt.pool.acquire() as conn, conn.transaction():
        # Checked again under the claim: another request may have used it meanwhile.
        contact_id = await _live_invitation(rt, conn, org_id, invitation_hash)
        if not await invitations.claim(conn, invitation_hash, contact_id):
            raise InvalidInvitation()
        # A new password ends every session of the old one (a stolen session included).
        account = await end_every_token(conn, contact_id, org_id, rt.clock())
        account.password_hash = password_hash
        account.record(PortalPasswordSet, Empty(), rt.cause(contact_id))
        await accounts.save(conn, account)
    async with rt.pool.acquire() as conn:
        await password_attempts.release(conn, limits)


async def _live_invitation(
    rt: AuthRuntime, conn: asyncpg.Connection, org_id: str, invitation_hash: str
) -> str:
    """The invited contact's id; refused if the invitation is unknown, expired or used."""
    contact = await rt.projection.contact_by_invitation(conn, org_id, invitation_hash)
    if (
        contact is None
        or contact.invitation_expires_at is None
        or contact.invitation_expires_at <= rt.clock()
    ):
        raise InvalidInvitation()
    if await invitations.is_used(conn, invitation_hash):
        raise InvalidInvitation()
    return contact.contact_id


def password_limits(org_id: str, email: str, client_address: str) -> list[Subject]:
    login = login_key(org_id, email)
    return [
        Subject(f"pair:{login}|{client_address}", PER_CONTACT_AND_ADDRESS, login, True),
        Subject(f"address:{client_address}", PER_CLIENT_ADDRESS),
        Subject(f"contact:{login}", PER_CONTACT, login),
    ]


async def login(
    rt: AuthRuntime, org_id: str, email: str, password: str, client_address: str
) -> LoginOutcome:
    """Unknown and known emails take the same path, statement for statement, and one
    argon2 verify each, so neither the answer nor its timing tells which emails exist."""
    rt.require_ready()
    now = rt.clock()
    limits = password_limits(org_id, email, client_address)
    async with rt.pool.acquire() as conn:
        # Reserved before the verify: parallel guesses beyond the limit are never checked.
        if not await password_attempts.reserve(conn, limits, now):
            # When the full window that refused this attempt starts over.
            until = await password_attempts.blocked_until(conn, limits, now)
            raise TooManyAttempts(until, now)
        found = await accounts.for_login(conn, f"{rt.projection.schema}.contacts", org_id, email)
    stored_hash = found.password_hash if found and found.password_hash else DUMMY_HASH
    right = await hashing.verified(stored_hash, password)
    right = right and found is not None and found.password_hash is not None
    # While the second factor is locked the right password gets the answer a wrong one
    # gets, so the lock is no oracle for guessing passwords.
    locked = found is not None and found.attempts.is_locked(now)
    if not right or locked:
        reason = "mfa_locked" if locked else "wrong_password"
        await _record_failure(rt, org_id, found.contact_id if found else None, email, reason)
        if locked:
            assert found is not None
            raise LockedOut(found.attempts, now)
        raise InvalidCredentials()
    assert found is not None

    async with rt.pool.acquire() as conn:
        # The attempt was no failure: given back on a statement of its own (the address's
        # counter is shared by every login from there: its lock is not held through the
        # session's transaction), on the connection that transaction then uses. A login
        # thus takes a connection from the pool twice, not three times: each return costs
        # a round trip (the pool's reset), CPU in auth and in PostgreSQL alike.
        await password_attempts.release(conn, limits)
        return await _password_accepted(rt, conn, found, org_id, now)


async def _password_accepted(
    rt: AuthRuntime, conn: asyncpg.Connection, found: LoginCandidate, org_id: str, now: datetime
) -> LoginOutcome:
    """The password was right: what the contact needs next (a session, or the second
    factor's challenge, or enrollment), decided on its locked account."""
    async with conn.transaction():
        # The row exists (its password was just checked): locked without the insert that
        # `accounts.lock` first tries, a round trip less.
        account = await accounts.lock_existing(conn, found.contact_id)
        if account is None or account.password_hash != found.password_hash:
            # A new password (or a revoke) landed between the verify and this lock: the
            # password just checked is no longer the contact's.
            raise InvalidCredentials()
        decision = await login_requirement(conn, rt.projection, org_id, found.contact_id)
        if decision.held.contact:
            # Fail closed, after the password (so it reveals nothing to a stranger): what
            # waits beyond the gap might be a revoke or a reset. No token of any kind.
            raise HistoryIncomplete(f"contact {found.contact_id} waits beyond a version gap")
        if decision.requirement == "totp":
            if account.attempts.is_locked(now):
                raise LockedOut(account.attempts, now)
            token, _ = await tokens.issue(
                conn, "challenge", found.contact_id, org_id, now, token=rt.random.token()
            )
            return MfaRequired(token)
        if decision.requirement == "enroll":
            token, _ = await tokens.issue(
                conn, "enrollment", found.contact_id, org_id, now, token=rt.random.token()
            )
            return EnrollmentRequired(token)
        session = await issue_session(rt, conn, account, ["password"], mfa=False)
        # Published at the relay's next poll, as every login outcome is (flows/challenge.py).
        await accounts.save(conn, account, wake_relay=False)
        return session


class _StandIn(Exception):
    """Undoes the stand-in account's writes (a savepoint rolled back)."""


STAND_INS = 64  # as many as schema.sql creates


def _stand_in(email: str) -> str:
    # Spread over several rows, so unknown emails do not all queue on one row lock.
    return f"stand-in:{int(hash_token(email.lower())[:8], 16) % STAND_INS}"


async def _record_failure(
    rt: AuthRuntime, org_id: str, contact_id: str | None, email: str, reason: str
) -> None:
    """`LoginFailed` on the contact's account; for an unknown email, the same statements on
    a stand-in account, rolled back to a savepoint, in a transaction that still commits."""
    account_id = contact_id or _stand_in(email)
    async with rt.pool.acquire() as conn, conn.transaction():
        try:
            async with conn.transaction():
                account = await accounts.lock(conn, account_id, org_id)
                cause = rt.cause(account_id)
                account.record(LoginFailed, LoginFailedPayload(reason=reason), cause)
                # Published at the relay's next poll, not at once: publishing right away
                # (signing, sending, audit's work) would slow this answer, and only for
                # an email that exists.
                await accounts.save(conn, account, wake_relay=False)
                if contact_id is None:
                    raise _StandIn
        except _StandIn:
            pass

"""The password step: accepting an invitation, and logging in with email and password."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.auth import hashing
from services.auth.adapters import accounts, password_attempts, tokens
from services.auth.adapters.password_attempts import Subject, login_key
from services.auth.decisions import login_requirement
from services.auth.domain.lockout import (
    INVITATIONS_PER_CLIENT_ADDRESS,
    PER_CLIENT_ADDRESS,
    PER_CONTACT,
    PER_CONTACT_AND_ADDRESS,
)
from services.auth.domain.passwords import DUMMY_HASH
from services.auth.flows.refusal import Refusal, invalid_credentials, locked_out, seconds_until
from services.auth.flows.sessions import end_every_token, issue_session
from services.auth.runtime import AuthRuntime
from shared.contracts import Empty, LoginFailed, LoginFailedPayload, PortalPasswordSet
from shared.login_rule.gapless import HistoryIncomplete
from shared.tokens import hash_token

MIN_PASSWORD_LENGTH = 10


def too_many_attempts(until: datetime | None, now: datetime) -> Refusal:
    return Refusal(
        429,
        "too-many-attempts",
        "Too many failed attempts; try again later",
        seconds_until(until, now),
    )


async def accept_invitation(
    rt: AuthRuntime, org_id: str, token: str, password: str, client_address: str
) -> None:
    rt.require_ready()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Refusal(
            400, "weak-password", f"The password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    limits = [Subject(f"invitation:{client_address}", INVITATIONS_PER_CLIENT_ADDRESS)]
    invitation_hash = hash_token(token)
    async with rt.pool.acquire() as conn:
        now = rt.clock()
        if not await password_attempts.reserve(conn, limits, now):
            until = await password_attempts.blocked_until(conn, limits, now)
            raise too_many_attempts(until, now)
        # The token first: an unknown, used or expired one costs no password hashing.
        await _live_invitation(rt, conn, org_id, invitation_hash)
    password_hash = await hashing.hashed(password)
    async with rt.pool.acquire() as conn, conn.transaction():
        # Checked again under the claim: another request may have used it meanwhile.
        contact_id = await _live_invitation(rt, conn, org_id, invitation_hash)
        used = await conn.fetchval(
            "INSERT INTO used_invitations (invitation_hash, contact_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            invitation_hash,
            contact_id,
        )
        if not used:
            raise _invalid_invitation()
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
        raise _invalid_invitation()
    used = await conn.fetchval(
        "SELECT true FROM used_invitations WHERE invitation_hash = $1", invitation_hash
    )
    if used:
        raise _invalid_invitation()
    return contact.contact_id


def _invalid_invitation() -> Refusal:
    return Refusal(400, "invalid-invitation", "The invitation is unknown, used or expired")


def password_limits(org_id: str, email: str, client_address: str) -> list[Subject]:
    login = login_key(org_id, email)
    return [
        Subject(f"pair:{login}|{client_address}", PER_CONTACT_AND_ADDRESS, login, True),
        Subject(f"address:{client_address}", PER_CLIENT_ADDRESS),
        Subject(f"contact:{login}", PER_CONTACT, login),
    ]


async def login(
    rt: AuthRuntime, org_id: str, email: str, password: str, client_address: str
) -> dict[str, Any]:
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
            raise too_many_attempts(until, now)
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
            raise locked_out(found.attempts, now)
        raise invalid_credentials()
    assert found is not None

    async with rt.pool.acquire() as conn:
        await password_attempts.release(conn, limits)
    async with rt.pool.acquire() as conn, conn.transaction():
        account = await accounts.lock(conn, found.contact_id, org_id)
        if account.password_hash != found.password_hash:
            # A new password (or a revoke) landed between the verify and this lock: the
            # password just checked is no longer the contact's.
            raise invalid_credentials()
        decision = await login_requirement(conn, rt.projection, org_id, found.contact_id)
        if decision.held.contact:
            # Fail closed, after the password (so it reveals nothing to a stranger): what
            # waits beyond the gap might be a revoke or a reset. No token of any kind.
            raise HistoryIncomplete(f"contact {found.contact_id} waits beyond a version gap")
        if decision.requirement == "totp":
            if account.attempts.is_locked(now):
                raise locked_out(account.attempts, now)
            token, _ = await tokens.issue(conn, "challenge", found.contact_id, org_id, now)
            return {"status": "mfa_required", "challenge_token": token}
        if decision.requirement == "enroll":
            token, _ = await tokens.issue(conn, "enrollment", found.contact_id, org_id, now)
            return {"status": "mfa_enrollment_required", "enrollment_token": token}
        session = await issue_session(rt, conn, account, ["password"], mfa=False)
        await accounts.save(conn, account)
        return session.as_dict()


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

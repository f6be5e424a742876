"""The password step: accepting an invitation, and logging in with email and password."""

from __future__ import annotations

import asyncio
from typing import Any

from services.auth.adapters import accounts, password_attempts, tokens
from services.auth.decisions import login_requirement
from services.auth.domain.lockout import PER_CLIENT_ADDRESS, PER_CONTACT
from services.auth.domain.passwords import hash_password, verify_against_dummy, verify_password
from services.auth.flows.refusal import Refusal, invalid_credentials, locked_out
from services.auth.flows.sessions import end_every_token, issue_session
from services.auth.runtime import AuthRuntime
from shared.events import Empty, LoginFailed, LoginFailedPayload, PortalPasswordSet
from shared.login_rule.gapless import HistoryIncomplete
from shared.tokens import hash_token

MIN_PASSWORD_LENGTH = 10


async def accept_invitation(rt: AuthRuntime, org_id: str, token: str, password: str) -> None:
    rt.require_ready()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Refusal(
            400, "weak-password", f"The password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    password_hash = await asyncio.to_thread(hash_password, password)
    invitation_hash = hash_token(token)
    now = rt.clock()
    async with rt.pool.acquire() as conn, conn.transaction():
        contact = await rt.projection.contact_by_invitation(conn, org_id, invitation_hash)
        expired = (
            contact is None
            or contact.invitation_expires_at is None
            or contact.invitation_expires_at <= now
        )
        if contact is None or expired:
            raise _invalid_invitation()
        used = await conn.fetchval(
            "INSERT INTO used_invitations (invitation_hash, contact_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            invitation_hash,
            contact.contact_id,
        )
        if not used:
            raise _invalid_invitation()
        # A new password ends every session of the old one (a stolen session included).
        account = await end_every_token(conn, contact.contact_id, org_id, now)
        account.password_hash = password_hash
        account.record(PortalPasswordSet, Empty(), rt.cause(contact.contact_id))
        await accounts.save(conn, account)


def _invalid_invitation() -> Refusal:
    return Refusal(400, "invalid-invitation", "The invitation is unknown, used or expired")


async def login(
    rt: AuthRuntime, org_id: str, email: str, password: str, client_address: str
) -> dict[str, Any]:
    rt.require_ready()
    now = rt.clock()
    by_contact = f"contact:{org_id}:{email.lower()}"
    by_address = f"address:{client_address}"
    async with rt.pool.acquire() as conn:
        if await password_attempts.over_limit(
            conn, by_contact, PER_CONTACT, now
        ) or await password_attempts.over_limit(conn, by_address, PER_CLIENT_ADDRESS, now):
            raise Refusal(429, "too-many-attempts", "Too many failed logins; try again later")
        contact = await rt.projection.contact_by_email(conn, org_id, email)
        stored_hash = await accounts.password_hash_of(conn, contact.contact_id) if contact else None

    if contact is None or stored_hash is None:
        # Same work as a real check, so timing does not tell which emails exist.
        await asyncio.to_thread(verify_against_dummy, password)
        await _count_failure(rt, by_contact, by_address)
        raise invalid_credentials()
    if not await asyncio.to_thread(verify_password, stored_hash, password):
        await _count_failure(rt, by_contact, by_address)
        async with rt.pool.acquire() as conn, conn.transaction():
            account = await accounts.lock(conn, contact.contact_id, org_id)
            account.record(
                LoginFailed,
                LoginFailedPayload(reason="wrong_password"),
                rt.cause(contact.contact_id),
            )
            await accounts.save(conn, account)
        raise invalid_credentials()

    async with rt.pool.acquire() as conn, conn.transaction():
        await password_attempts.clear(conn, by_contact)
        account = await accounts.lock(conn, contact.contact_id, org_id)
        decision = await login_requirement(conn, rt.projection, org_id, contact.contact_id)
        if decision.held.contact:
            # Fail closed, after the password (so it reveals nothing to a stranger): what
            # waits beyond the gap might be a revoke or a reset. No token of any kind.
            raise HistoryIncomplete(f"contact {contact.contact_id} waits beyond a version gap")
        if decision.requirement == "totp":
            if account.attempts.is_locked(now):
                raise locked_out()
            token, _ = await tokens.issue(conn, "challenge", contact.contact_id, org_id, now)
            return {"status": "mfa_required", "challenge_token": token}
        if decision.requirement == "enroll":
            token, _ = await tokens.issue(conn, "enrollment", contact.contact_id, org_id, now)
            return {"status": "mfa_enrollment_required", "enrollment_token": token}
        session = await issue_session(rt, conn, account, ["password"], mfa=False)
        await accounts.save(conn, account)
        return session.as_dict()


async def _count_failure(rt: AuthRuntime, by_contact: str, by_address: str) -> None:
    now = rt.clock()
    async with rt.pool.acquire() as conn, conn.transaction():
        await password_attempts.record_failure(conn, by_contact, PER_CONTACT, now)
        await password_attempts.record_failure(conn, by_address, PER_CLIENT_ADDRESS, now)

"""Self-service TOTP enrollment at login: start (the key), verify a code, enable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.auth.adapters import accounts, enrollments, tokens
from services.auth.domain import totp
from services.auth.domain.account import Account
from services.auth.domain.backup_codes import backup_code_key, hash_backup_code
from services.auth.domain.enrollment import Enrollment
from services.auth.domain.errors import (
    AlreadyEnrolled,
    EnrollmentNotStarted,
    EnrollmentNotVerified,
    InvalidToken,
    LockedOut,
    WrongEnrollmentCode,
)
from services.auth.domain.results import EnrollmentStarted, Session
from services.auth.flows.runtime import AuthRuntime
from services.auth.flows.sessions import issue_session
from shared.contracts import (
    BackupCodesIssued,
    BackupCodesIssuedPayload,
    Empty,
    EnrollmentRef,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaEnrollmentStarted,
    MfaEnrollmentVerified,
    OtpReplayRejected,
)
from shared.login_rule.projected import ProjectedContact


@dataclass
class _Opened:
    token: tokens.Token
    contact: ProjectedContact
    account: Account


async def _open(rt: AuthRuntime, conn: asyncpg.Connection, enrollment_token: str) -> _Opened:
    """The live token, its contact, and the contact's account, locked for this transaction.

    A contact that already has an active enrollment cannot enroll again, whatever tokens
    it still holds: only an admin's reset frees an enrolled contact.
    """
    token = await tokens.find(conn, enrollment_token, "enrollment", rt.clock(), lock=True)
    if token is None:
        raise InvalidToken("enrollment")
    contact = await rt.projection.contact(conn, token.org_id, token.contact_id)
    if contact is None or not contact.portal_access:
        raise InvalidToken("enrollment")
    account = await accounts.lock(conn, token.contact_id, token.org_id)
    current = await enrollments.enabled_for(conn, token.contact_id)
    if current is not None and current.is_active(contact):
        raise AlreadyEnrolled()
    return _Opened(token, contact, account)


async def _started(conn: asyncpg.Connection, token: tokens.Token) -> Enrollment | None:
    return await enrollments.get(conn, token.enrollment_id) if token.enrollment_id else None


def _sealed_for(enrollment_id: uuid.UUID) -> bytes:
    # Binding the ciphertext to its enrollment stops a blob being moved to another row.
    return enrollment_id.bytes


async def start(rt: AuthRuntime, enrollment_token: str) -> EnrollmentStarted:
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        opened = await _open(rt, conn, enrollment_token)
        token, contact, account = opened.token, opened.contact, opened.account
        policy = await rt.projection.policy(conn, token.org_id)
        existing = await _started(conn, token)
        if existing is not None and existing.secret_blob is not None:
            # A reload shows the same key, so a QR code already scanned keeps working.
            secret = rt.secret_box.open(existing.secret_blob, _sealed_for(existing.enrollment_id))
        else:
            enrollment_id = rt.random.enrollment_id()
            secret = rt.random.totp_secret()
            blob = rt.secret_box.seal(secret, _sealed_for(enrollment_id))
            await enrollments.create(
                conn, enrollment_id, token.contact_id, token.org_id, blob, contact.mfa_epoch
            )
            await tokens.attach_enrollment(conn, token, enrollment_id)
            account.record(
                MfaEnrollmentStarted,
                EnrollmentRef(enrollment_id=enrollment_id),
                rt.cause(token.contact_id),
            )
            await accounts.save(conn, account)
    uri = totp.provisioning_uri(secret, account_name=contact.email, issuer=policy.issuer)
    return EnrollmentStarted(secret, uri)


async def verify(rt: AuthRuntime, enrollment_token: str, otp: str) -> list[str]:
    """The backup codes, shown once."""
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        codes = await _verify(rt, conn, await _open(rt, conn, enrollment_token), otp)
    # Raised after the commit: a wrong code must still count toward the lockout.
    if codes is None:
        raise WrongEnrollmentCode()
    return codes


async def _verify(
    rt: AuthRuntime, conn: asyncpg.Connection, opened: _Opened, otp: str
) -> list[str] | None:
    now = rt.clock()
    token, account = opened.token, opened.account
    enrollment = await _started(conn, token)
    if enrollment is None or not enrollment.can_verify:
        raise EnrollmentNotStarted()
    assert enrollment.secret_blob is not None
    if account.attempts.is_locked(now):
        raise LockedOut(account.attempts, now)
    secret = rt.secret_box.open(enrollment.secret_blob, _sealed_for(enrollment.enrollment_id))
    step = totp.matching_time_step(secret, otp, now)
    claimed = step is not None and await enrollments.claim_time_step(
        conn, enrollment.enrollment_id, step
    )
    cause = rt.cause(token.contact_id, now)
    if not claimed:
        if step is not None:
            account.record(OtpReplayRejected, Empty(), cause)
        account.second_factor_failed("wrong_otp" if step is None else "reused_otp", cause)
        await accounts.save(conn, account)
        return None
    codes = rt.random.backup_codes()
    key = backup_code_key(secret)
    await enrollments.replace_backup_codes(
        conn, enrollment.enrollment_id, [hash_backup_code(c, key) for c in codes]
    )
    await enrollments.mark_verified(conn, enrollment.enrollment_id)
    if enrollment.status == "pending":
        ref = EnrollmentRef(enrollment_id=enrollment.enrollment_id)
        account.record(MfaEnrollmentVerified, ref, cause)
    account.record(BackupCodesIssued, BackupCodesIssuedPayload(count=len(codes)), cause)
    await accounts.save(conn, account)
    return codes


async def enable(rt: AuthRuntime, enrollment_token: str) -> Session:
    rt.require_ready()
    now = rt.clock()
    async with rt.pool.acquire() as conn, conn.transaction():
        opened = await _open(rt, conn, enrollment_token)
        token, contact, account = opened.token, opened.contact, opened.account
        enrollment = await _started(conn, token)
        if enrollment is None or not enrollment.can_enable:
            raise EnrollmentNotVerified()
        # The epoch auth knows now: a reset it has not seen yet will outrank this enrollment.
        enrolled = account.record(
            MfaEnrolled,
            MfaEnrolledPayload(enrollment_id=enrollment.enrollment_id, mfa_epoch=contact.mfa_epoch),
            rt.cause(token.contact_id, now),
        )
        await enrollments.enable(conn, enrollment, contact.mfa_epoch, enrolled.event_id, now)
        if not await tokens.consume(conn, token, now):
            raise InvalidToken("enrollment")
        session = await issue_session(rt, conn, account, ["password", "totp"], mfa=True, now=now)
        await accounts.save(conn, account)
    return session

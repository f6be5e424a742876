"""Self-service TOTP enrollment at login: start (QR + key), verify a code, enable."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import segno

from services.auth.adapters import accounts, enrollments, tokens
from services.auth.domain import totp
from services.auth.domain.backup_codes import (
    backup_code_key,
    hash_backup_code,
    issue_backup_codes,
)
from services.auth.flows.refusal import Refusal, invalid_token, locked_out
from services.auth.flows.second_factor import record_failure
from services.auth.flows.sessions import issue_session
from services.auth.runtime import AuthRuntime
from shared.contracts import (
    BackupCodesIssued,
    BackupCodesIssuedPayload,
    Empty,
    EnrollmentRef,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaEnrollmentStarted,
    OtpReplayRejected,
)
from shared.login_rule.login_requirement import is_active
from shared.login_rule.projected import ProjectedContact


@dataclass
class _Opened:
    token: tokens.Token
    contact: ProjectedContact
    account: accounts.Account


async def _open(rt: AuthRuntime, conn: asyncpg.Connection, enrollment_token: str) -> _Opened:
    """The live token, its contact, and the contact's account, locked for this transaction.

    A contact that already has an active enrollment cannot enroll again, whatever tokens
    it still holds: only an admin's reset frees an enrolled contact.
    """
    token = await tokens.find(conn, enrollment_token, "enrollment", rt.clock(), lock=True)
    if token is None:
        raise invalid_token("enrollment")
    contact = await rt.projection.contact(conn, token.org_id, token.contact_id)
    if contact is None or not contact.portal_access:
        raise invalid_token("enrollment")
    account = await accounts.lock(conn, token.contact_id, token.org_id)
    current = await enrollments.enabled_for(conn, token.contact_id)
    if current is not None and is_active(current.as_active(), contact):
        raise Refusal(409, "already-enrolled", "MFA is already configured for this account")
    return _Opened(token, contact, account)


def _sealed_for(enrollment_id: uuid.UUID) -> bytes:
    # Binding the ciphertext to its enrollment stops a blob being moved to another row.
    return enrollment_id.bytes


async def start(rt: AuthRuntime, enrollment_token: str) -> dict[str, Any]:
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        opened = await _open(rt, conn, enrollment_token)
        token, contact, account = opened.token, opened.contact, opened.account
        policy = await rt.projection.policy(conn, token.org_id)
        existing = await enrollments.get(conn, token.enrollment_id) if token.enrollment_id else None
        if existing is not None and existing.secret_blob is not None:
            # A reload shows the same key, so a QR code already scanned keeps working.
            secret = rt.secret_box.open(existing.secret_blob, _sealed_for(existing.enrollment_id))
        else:
            enrollment_id = uuid.uuid4()
            secret = totp.new_secret()
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
    qr = segno.make(uri, error="m")
    svg = io.BytesIO()
    qr.save(svg, kind="svg", scale=4, xmldecl=True)
    return {
        "secret": secret,
        "otpauth_uri": uri,
        "qr_svg": svg.getvalue().decode(),
        "qr_png_data_uri": qr.png_data_uri(scale=5),
    }


async def verify(rt: AuthRuntime, enrollment_token: str, otp: str) -> dict[str, Any]:
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        codes = await _verify(rt, conn, await _open(rt, conn, enrollment_token), otp)
    # Raised after the commit: a wrong code must still count toward the lockout.
    if codes is None:
        raise Refusal(400, "wrong-code", "That code is not valid; enter the current code")
    return {"backup_codes": codes}


async def _verify(
    rt: AuthRuntime, conn: asyncpg.Connection, opened: _Opened, otp: str
) -> list[str] | None:
    now = rt.clock()
    token, account = opened.token, opened.account
    enrollment = await enrollments.get(conn, token.enrollment_id) if token.enrollment_id else None
    if enrollment is None or enrollment.status not in ("pending", "verified"):
        raise Refusal(409, "enrollment-not-started", "Start the enrollment first")
    assert enrollment.secret_blob is not None
    if account.attempts.is_locked(now):
        raise locked_out(account.attempts, now)
    secret = rt.secret_box.open(enrollment.secret_blob, _sealed_for(enrollment.enrollment_id))
    step = totp.matching_time_step(secret, otp, now)
    claimed = step is not None and await enrollments.claim_time_step(
        conn, enrollment.enrollment_id, step
    )
    cause = rt.cause(token.contact_id)
    if not claimed:
        if step is not None:
            account.record(OtpReplayRejected, Empty(), cause)
        record_failure(rt, account, "wrong_otp" if step is None else "reused_otp")
        await accounts.save(conn, account)
        return None
    codes = issue_backup_codes()
    key = backup_code_key(secret)
    await enrollments.replace_backup_codes(
        conn, enrollment.enrollment_id, [hash_backup_code(c, key) for c in codes]
    )
    await enrollments.mark_verified(conn, enrollment.enrollment_id)
    account.attempts = account.attempts.after_success()
    account.record(BackupCodesIssued, BackupCodesIssuedPayload(count=len(codes)), cause)
    await accounts.save(conn, account)
    return codes


async def enable(rt: AuthRuntime, enrollment_token: str) -> dict[str, Any]:
    rt.require_ready()
    now = rt.clock()
    async with rt.pool.acquire() as conn, conn.transaction():
        opened = await _open(rt, conn, enrollment_token)
        token, contact, account = opened.token, opened.contact, opened.account
        enrollment = (
            await enrollments.get(conn, token.enrollment_id) if token.enrollment_id else None
        )
        if enrollment is None or enrollment.status != "verified":
            raise Refusal(409, "enrollment-not-verified", "Verify a code before enabling MFA")
        # The epoch auth knows now: a reset it has not seen yet will outrank this enrollment.
        enrolled = account.record(
            MfaEnrolled,
            MfaEnrolledPayload(enrollment_id=enrollment.enrollment_id, mfa_epoch=contact.mfa_epoch),
            rt.cause(token.contact_id),
        )
        await enrollments.enable(conn, enrollment, contact.mfa_epoch, enrolled.event_id, now)
        if not await tokens.consume(conn, token, now):
            raise invalid_token("enrollment")
        session = await issue_session(rt, conn, account, ["password", "totp"], mfa=True)
        await accounts.save(conn, account)
    return session.as_dict()

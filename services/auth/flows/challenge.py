"""The second factor at login: a current TOTP code or an unused backup code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.auth.adapters import accounts, enrollments, tokens
from services.auth.domain import totp
from services.auth.domain.backup_codes import backup_code_key, hash_backup_code
from services.auth.flows.refusal import Refusal, invalid_token, locked_out
from services.auth.flows.second_factor import record_failure
from services.auth.flows.sessions import Factor, issue_session
from services.auth.runtime import AuthRuntime
from shared.contracts import BackupCodeUsed, BackupCodeUsedPayload, Empty, OtpReplayRejected
from shared.login_rule.login_requirement import is_active


async def answer(
    rt: AuthRuntime, challenge_token: str, otp: str | None, backup_code: str | None
) -> dict[str, Any]:
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        outcome = await _attempt(rt, conn, challenge_token, otp, backup_code, rt.clock())
    # Raised after the commit: a failed attempt must still count toward the lockout.
    if outcome is None:
        raise Refusal(401, "wrong-code", "That code is wrong or was already used")
    return outcome


async def _attempt(
    rt: AuthRuntime,
    conn: asyncpg.Connection,
    challenge_token: str,
    otp: str | None,
    backup_code: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    challenge = await tokens.find(conn, challenge_token, "challenge", now, lock=True)
    if challenge is None:
        raise invalid_token("challenge")
    account = await accounts.lock(conn, challenge.contact_id, challenge.org_id)
    if account.attempts.is_locked(now):
        raise locked_out(account.attempts, now)
    contact = await rt.projection.contact(conn, challenge.org_id, challenge.contact_id)
    enrollment = await enrollments.enabled_for(conn, challenge.contact_id)
    if (
        contact is None
        or not contact.portal_access
        or enrollment is None
        or not is_active(enrollment.as_active(), contact)
    ):
        # Reset or revoked since the password step: the login starts again.
        raise invalid_token("challenge")

    cause = rt.cause(challenge.contact_id)
    remaining: int | None = None
    if otp is not None:
        assert enrollment.secret_blob is not None
        secret = rt.secret_box.open(enrollment.secret_blob, enrollment.enrollment_id.bytes)
        step = totp.matching_time_step(secret, otp, now)
        accepted = step is not None and await enrollments.claim_time_step(
            conn, enrollment.enrollment_id, step
        )
        if step is not None and not accepted:
            account.record(OtpReplayRejected, Empty(), cause)
        reason = "wrong_otp" if step is None else "reused_otp"
    else:
        assert backup_code is not None and enrollment.secret_blob is not None
        key = backup_code_key(
            rt.secret_box.open(enrollment.secret_blob, enrollment.enrollment_id.bytes)
        )
        remaining = await enrollments.use_backup_code(
            conn, enrollment.enrollment_id, hash_backup_code(backup_code, key), now
        )
        accepted = remaining is not None
        if remaining is not None:
            account.record(BackupCodeUsed, BackupCodeUsedPayload(remaining=remaining), cause)
        reason = "wrong_backup_code"

    if not accepted or not await tokens.consume(conn, challenge, now):
        record_failure(rt, account, reason)
        await accounts.save(conn, account)
        return None
    account.attempts = account.attempts.after_success()
    factor: Factor = "totp" if otp is not None else "backup_code"
    session = await issue_session(rt, conn, account, ["password", factor], mfa=True)
    await accounts.save(conn, account)
    if remaining is None:
        remaining = await enrollments.remaining_backup_codes(conn, enrollment.enrollment_id)
    return {**session.as_dict(), "backup_codes_remaining": remaining}

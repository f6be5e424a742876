"""The second factor at login: a current TOTP code or an unused backup code."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.auth.adapters import accounts, challenges, enrollments
from services.auth.domain import totp
from services.auth.domain.account import Account
from services.auth.domain.backup_codes import backup_code_key, hash_backup_code
from services.auth.domain.errors import InvalidToken, LockedOut, WrongCode
from services.auth.domain.results import Factor, SecondFactorPassed
from services.auth.flows.runtime import AuthRuntime
from services.auth.flows.sessions import new_session
from shared.contracts import (
    BackupCodeUsed,
    BackupCodeUsedPayload,
    Cause,
    Empty,
    OtpReplayRejected,
)
from shared.eventstore import OUTBOX_CHANNEL
from shared.login_rule.gapless import HistoryIncomplete


async def answer(
    rt: AuthRuntime, challenge_token: str, otp: str | None, backup_code: str | None
) -> SecondFactorPassed:
    rt.require_ready()
    async with rt.pool.acquire() as conn, conn.transaction():
        outcome = await _attempt(rt, conn, challenge_token, otp, backup_code, rt.clock())
    # Raised after the commit: a failed attempt must still count toward the lockout.
    if outcome is None:
        raise WrongCode()
    if rt.relay is not None:
        # Committed: the relay of this process publishes the login's event now (a NOTIFY
        # was sent instead if it did not hold the outbox when the attempt was written).
        rt.relay.wake()
    return outcome


async def _attempt(
    rt: AuthRuntime,
    conn: asyncpg.Connection,
    challenge_token: str,
    otp: str | None,
    backup_code: str | None,
    now: datetime,
) -> SecondFactorPassed | None:
    # One round trip: the token locked, then the account, then what the factor needs.
    opened = await challenges.open_challenge(conn, rt.projection, challenge_token, now)
    if opened is None:
        raise InvalidToken("challenge")
    challenge, account = opened.challenge, opened.account
    if account.attempts.is_locked(now):
        raise LockedOut(account.attempts, now)
    if opened.contact_waiting:
        # What waits (a revoke, a reset) might end what this login is about to grant.
        raise HistoryIncomplete(f"contact {challenge.contact_id} waits beyond a version gap")
    contact, enrollment = opened.contact, opened.enrollment
    if (
        contact is None
        or not contact.portal_access
        or enrollment is None
        or not enrollment.is_active(contact)
    ):
        # Reset or revoked since the password step: the login starts again.
        raise InvalidToken("challenge")

    cause = rt.cause(challenge.contact_id, now)
    assert enrollment.secret_blob is not None
    secret = rt.secret_box.open(enrollment.secret_blob, enrollment.enrollment_id.bytes)
    step: int | None = None
    if otp is not None:
        step = totp.matching_time_step(secret, otp, now)
        if step is None:
            await _failed(conn, account, "wrong_otp", cause)
            return None
    else:
        assert backup_code is not None
        remaining = await enrollments.use_backup_code(
            conn,
            enrollment.enrollment_id,
            hash_backup_code(backup_code, backup_code_key(secret)),
            now,
        )
        if remaining is None:
            await _failed(conn, account, "wrong_backup_code", cause)
            return None
        account.record(BackupCodeUsed, BackupCodeUsedPayload(remaining=remaining), cause)

    # The login as it passes, on a copy: if the step turns out replayed, only the
    # failure is recorded on the account.
    passing = challenges.attempt_of(account)
    factor: Factor = "totp" if otp is not None else "backup_code"
    session = new_session(rt, passing, ["password", factor], now)
    outcome = await challenges.passed(
        conn,
        opened,
        passing,
        time_step=step,
        session_token=session.token,
        session_expires_at=session.expires_at,
        now=now,
        wake_channel=None if rt.relay is not None and rt.relay.publishing else OUTBOX_CHANNEL,
    )
    if outcome is challenges.Claim.REPLAYED:
        account.record(OtpReplayRejected, Empty(), cause)
        await _failed(conn, account, "reused_otp", cause)
        return None
    if outcome is challenges.Claim.TOKEN_USED:
        await _failed(
            conn, account, "reused_otp" if step is not None else "wrong_backup_code", cause
        )
        return None
    return SecondFactorPassed(session, outcome)


async def _failed(conn: asyncpg.Connection, account: Account, reason: str, cause: Cause) -> None:
    """A wrong or reused factor: counted toward the lockout (committed, then refused)."""
    account.second_factor_failed(reason, cause)
    await accounts.save(conn, account)

"""The second factor at login: a current TOTP code or an unused backup code."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.auth.adapters import accounts, challenges, enrollments
from services.auth.domain import totp
from services.auth.domain.account import Account
from services.auth.domain.backup_codes import backup_code_key, hash_backup_code
from services.auth.domain.enrollment import Enrollment
from services.auth.domain.errors import InvalidToken, LockedOut, WrongCode
from services.auth.domain.results import Factor, SecondFactorPassed, Session
from services.auth.flows.runtime import AuthRuntime
from services.auth.flows.sessions import new_session
from shared.contracts import (
    BackupCodeUsed,
    BackupCodeUsedPayload,
    Cause,
    Empty,
    OtpReplayRejected,
)
from shared.login_rule.gapless import HistoryIncomplete

# A login's outcome (`LoginSucceeded`, `LoginFailed`, `BackupCodeUsed`) wakes no relay (a
# lockout does: `_failed`): it is published at the relay's next poll (within
# `relay_poll_interval_s`), many to a batch. Only audit reads these events; publishing
# each at once cost the stack ~0.5 ms per login (a relay cycle, a broker write, an audit
# transaction each). docs/decisions.md.


async def answer(
    rt: AuthRuntime, challenge_token: str, otp: str | None, backup_code: str | None
) -> SecondFactorPassed:
    rt.require_ready()
    # The common case first, with no connection or transaction of its own: a right code,
    # decided on an unlocked read that the write checks again under the locks, both
    # statements shared with the other challenges under way (adapters/challenge_batches.py).
    outcome = None if otp is None else await _pass_unlocked(rt, challenge_token, otp)
    if outcome is None:
        # Anything else (a refusal, a wrong or replayed code, a backup code, a change
        # since the read, a row another transaction held) is decided here, on rows
        # locked from the start.
        async with rt.pool.acquire() as conn, conn.transaction():
            outcome = await _attempt(rt, conn, challenge_token, otp, backup_code, rt.clock())
    # Raised after the commit: a failed attempt must still count toward the lockout.
    if outcome is None:
        raise WrongCode()
    return outcome


def _refusal(opened: challenges.Opened | None, now: datetime) -> Exception | None:
    """Why this challenge cannot be answered now, whatever the code."""
    if opened is None:
        return InvalidToken("challenge")
    if opened.account.attempts.is_locked(now):
        return LockedOut(opened.account.attempts, now)
    if opened.contact_waiting:
        # What waits (a revoke, a reset) might end what this login is about to grant.
        contact_id = opened.challenge.contact_id
        return HistoryIncomplete(f"contact {contact_id} waits beyond a version gap")
    contact, enrollment = opened.contact, opened.enrollment
    if (
        contact is None
        or not contact.portal_access
        or enrollment is None
        or not enrollment.is_active(contact)
    ):
        # Reset or revoked since the password step: the login starts again.
        return InvalidToken("challenge")
    return None


def _secret(rt: AuthRuntime, enrollment: Enrollment | None) -> str:
    assert enrollment is not None and enrollment.secret_blob is not None
    return rt.secret_box.open(enrollment.secret_blob, enrollment.enrollment_id.bytes)


async def _pass_unlocked(
    rt: AuthRuntime, challenge_token: str, otp: str
) -> SecondFactorPassed | None:
    """The passed login, or None: the locked attempt decides (and records) everything else."""
    now = rt.clock()
    opened = await rt.challenge_groups.open(challenge_token, now)
    if opened is None or opened.fingerprint is None or _refusal(opened, now) is not None:
        return None
    if opened.account.password_hash is None:
        return None
    step = totp.matching_time_step(_secret(rt, opened.enrollment), otp, now)
    if step is None:
        return None
    passing = challenges.attempt_of(opened.account)
    session, outcome = await _passed(rt, None, opened, passing, step, "totp", now)
    # A replay, or anything changed since the read: nothing was written.
    return SecondFactorPassed(session, outcome) if isinstance(outcome, int) else None


async def _passed(
    rt: AuthRuntime,
    conn: asyncpg.Connection | None,
    opened: challenges.Opened,
    passing: Account,
    step: int | None,
    factor: Factor,
    now: datetime,
) -> tuple[Session, int | challenges.Claim]:
    """The session this factor earns, and what writing the passed login gave: on `conn`,
    in the locked attempt's transaction; without it, read unlocked (`opened.fingerprint`),
    with the other challenges under way."""
    session = new_session(rt, passing, ["password", factor], now)
    claim = challenges.passing(
        opened,
        passing,
        time_step=step,
        session_token=session.token,
        session_expires_at=session.expires_at,
        now=now,
        read_as=opened.fingerprint if conn is None else None,
    )
    if conn is None:
        return session, await rt.challenge_groups.passed(claim)
    return session, await challenges.passed(conn, claim, wake_relay=False)


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
    refusal = _refusal(opened, now)
    if refusal is not None:
        raise refusal
    assert opened is not None
    account, enrollment = opened.account, opened.enrollment
    assert enrollment is not None
    cause = rt.cause(opened.challenge.contact_id, now)
    secret = _secret(rt, enrollment)
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
    session, outcome = await _passed(rt, conn, opened, passing, step, factor, now)
    if outcome is challenges.Claim.REPLAYED:
        account.record(OtpReplayRejected, Empty(), cause)
        await _failed(conn, account, "reused_otp", cause)
        return None
    if isinstance(outcome, challenges.Claim):  # used meanwhile (cannot be: it is locked)
        await _failed(
            conn, account, "reused_otp" if step is not None else "wrong_backup_code", cause
        )
        return None
    return SecondFactorPassed(session, outcome)


async def _failed(conn: asyncpg.Connection, account: Account, reason: str, cause: Cause) -> None:
    """A wrong or reused factor: counted toward the lockout (committed, then refused)."""
    # A lockout or a disabled authenticator is published at once, for audit's readers to
    # see it as it happens; a plain failure waits for the relay's poll.
    locked = account.second_factor_failed(reason, cause)
    await accounts.save(conn, account, wake_relay=locked)

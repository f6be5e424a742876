"""What auth does to its own state when a contact is reset, revoked or deleted.

Runs in the projection's transaction, for the events the projection actually applied,
in the order it applied them: not for a duplicate, and not for an event held beyond a
version gap (a forged reset with a made-up version shreds nothing). Repeating it finds
nothing left to change and records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.auth.adapters import accounts, enrollments, tokens
from services.auth.lockouts import lift_lockouts
from services.auth.projection import LoginProjection
from shared.events import (
    Cause,
    ContactDeleted,
    ContactUnlocked,
    Event,
    MfaEnrollmentInvalidated,
    MfaEnrollmentInvalidatedPayload,
    MfaReset,
    PortalAccessRevoked,
)


class AuthProjection:
    """The login projection plus auth's reactions: crypto-shredding and ending sessions."""

    def __init__(self, login: LoginProjection) -> None:
        self.login = login
        self.name = login.name
        self.offsets_table = login.offsets_table

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        applied = await self.login.apply_in_order(conn, events)
        ended: list[str] = []
        for event in applied:
            match event:
                case MfaReset():
                    await _invalidate_enrollments(conn, event)
                    await lift_lockouts(conn, self.login, event)
                case ContactUnlocked():
                    await lift_lockouts(conn, self.login, event)
                case PortalAccessRevoked() | ContactDeleted():
                    ended.append(event.aggregate_id)
        if ended:
            await tokens.end_sessions(conn, ended, applied[-1].occurred_at)


async def _invalidate_enrollments(conn: asyncpg.Connection, reset: MfaReset) -> None:
    epoch = reset.payload.mfa_epoch
    # Deleting the secret and codes is the reset: the events stay, the keys are gone.
    shredded = await enrollments.shred(
        conn,
        "contact_id = $1 AND mfa_epoch < $2 AND status <> 'invalidated'",
        reset.aggregate_id,
        epoch,
    )
    if not shredded:
        return
    account = await accounts.lock(conn, reset.aggregate_id, reset.org_id)
    cause = Cause(
        actor="system",
        at=reset.occurred_at,
        correlation_id=reset.correlation_id,
        causation_id=str(reset.event_id),
    )
    for enrollment_id in shredded:
        account.record(
            MfaEnrollmentInvalidated,
            MfaEnrollmentInvalidatedPayload(enrollment_id=enrollment_id, by_epoch=epoch),
            cause,
        )
    await accounts.save(conn, account)

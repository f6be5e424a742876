"""What auth does to its own state when a contact is reset, revoked or deleted, or an org
turns MFA on (the rule: `domain.session_end`).

Runs in the projection's transaction, for the events the projection actually applied,
in the order it applied them: not for a duplicate, and not for an event held beyond a
version gap (a forged reset with a made-up version shreds nothing). Repeating it finds
nothing left to change and records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.auth.adapters import accounts, enrollments, tokens
from services.auth.domain.session_end import ContactTokensEnd, PasswordSessionsEnd, ended_by
from services.auth.flows.sessions import end_every_token
from services.auth.lockouts import lift_lockouts
from services.auth.projection import LoginProjection
from shared.contracts import (
    Cause,
    ContactUnlocked,
    Event,
    MfaEnrollmentInvalidated,
    MfaEnrollmentInvalidatedPayload,
    MfaReset,
)


class AuthProjection:
    """The login projection plus auth's reactions: crypto-shredding and ending sessions."""

    def __init__(self, login: LoginProjection) -> None:
        self.login = login
        self.name = login.name
        self.offsets_table = login.offsets_table

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        applied = await self.login.apply_in_order(conn, events)
        for event in applied:
            match ended_by(event):
                case ContactTokensEnd() as end:
                    await self._end_contact(conn, event, end)
                case PasswordSessionsEnd(org_id=org_id):
                    await tokens.end_password_sessions(conn, org_id, event.occurred_at)
                case None:
                    pass
            # After the sessions end: that saves the account row, which these clear.
            if isinstance(event, MfaReset | ContactUnlocked):
                await lift_lockouts(conn, self.login, event)

    async def _end_contact(
        self, conn: asyncpg.Connection, event: Event, end: ContactTokensEnd
    ) -> None:
        account = await end_every_token(conn, end.contact_id, end.org_id, event.occurred_at)
        if end.credentials:
            # A later grant must mean a new password and a new enrollment: nothing of the
            # old access may work again, before or after the new invitation is accepted.
            account.password_hash = None
            [contact] = await self.login.contacts(conn, [end.contact_id])
            epoch = contact.mfa_epoch
            where = "contact_id = $1 AND status <> 'invalidated'"
            shredded = await enrollments.shred(conn, where, end.contact_id)
        else:
            assert end.shred_below_epoch is not None
            epoch = end.shred_below_epoch
            where = "contact_id = $1 AND mfa_epoch < $2 AND status <> 'invalidated'"
            shredded = await enrollments.shred(conn, where, end.contact_id, epoch)
        # Deleting the secret and codes is the reset: the events stay, the keys are gone.
        cause = Cause(
            actor="system",
            at=event.occurred_at,
            correlation_id=event.correlation_id,
            causation_id=str(event.event_id),
        )
        for enrollment_id in shredded:
            account.record(
                MfaEnrollmentInvalidated,
                MfaEnrollmentInvalidatedPayload(enrollment_id=enrollment_id, by_epoch=epoch),
                cause,
            )
        await accounts.save(conn, account)

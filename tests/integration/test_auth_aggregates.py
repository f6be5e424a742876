"""auth's `Account` and `Enrollment` are event-sourced: after real flows on a real PostgreSQL,
folding the account's stored events gives exactly the rows the flows wrote (the rows are
snapshots), and the SQL that picks the enrollment a login decides with agrees with the
domain's one "is this enrollment active" rule.

The flows run as the HTTP routes run them, with a clock the test moves; the contact is
put in place, reset, unlocked and revoked by auth's own projection applying the contacts
events, reactions included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest

from services.auth.adapters import accounts, enrollments
from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.account import Account
from services.auth.domain.enrollment import current, fold
from services.auth.domain.errors import LockedOut, WrongCode, WrongEnrollmentCode
from services.auth.domain.lockout import FIRST_LOCKOUT, MAX_CONSECUTIVE_FAILURES
from services.auth.domain.results import EnrollmentRequired, MfaRequired
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.flows import challenge, enrollment, login
from services.auth.flows.decisions import login_requirement
from services.auth.flows.reactions import AuthProjection
from services.auth.flows.runtime import AuthRuntime
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    ContactUnlocked,
    ContactUnlockedPayload,
    Empty,
    EventEnvelope,
    MfaEnrollmentInvalidated,
    MfaLockoutLifted,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    Payload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.tokens import hash_token
from tests.integration.movable_clock import START, STEP, MovableClock, wrong_code

pytestmark = pytest.mark.integration

ORG, CONTACT, EMAIL = "acme", "c-1", "v@example.com"
PASSWORD, ADDRESS = "correct-horse-battery", "192.0.2.7"


@dataclass
class _Ready:
    ready: bool = True


@dataclass
class World:
    rt: AuthRuntime
    clock: MovableClock
    conn: asyncpg.Connection
    contact_version: int = 0
    secrets: dict[str, str] = field(default_factory=dict)

    async def contact_event(self, cls: type[EventEnvelope], payload: Payload) -> EventEnvelope:
        """The contacts service's next event for the contact, applied by auth's projection."""
        self.contact_version += 1
        event = cls.new(
            org_id=ORG,
            aggregate_id=CONTACT,
            aggregate_version=self.contact_version,
            payload=payload,
            cause=Cause(actor="admin", at=self.clock()),
        )
        async with self.conn.transaction():
            await AuthProjection(self.rt.projection).apply(self.conn, [event])  # type: ignore[list-item]
        return event

    async def invite(self) -> None:
        invitation = f"invitation-{uuid.uuid4().hex}"
        payload = PortalAccessGrantedPayload(
            email=EMAIL,
            invitation_hash=hash_token(invitation),
            expires_at=self.clock() + timedelta(days=7),
        )
        await self.contact_event(PortalAccessGranted, payload)
        await login.accept_invitation(self.rt, ORG, invitation, PASSWORD, ADDRESS)

    async def log_in(self) -> Any:
        return await login.login(self.rt, ORG, EMAIL, PASSWORD, ADDRESS)

    async def enrollment_token(self) -> str:
        outcome = await self.log_in()
        assert isinstance(outcome, EnrollmentRequired), outcome
        return outcome.enrollment_token

    async def start(self, token: str) -> str:
        secret = (await enrollment.start(self.rt, token)).secret
        self.secrets[token] = secret
        return secret

    async def verify(self, token: str) -> None:
        await enrollment.verify(self.rt, token, totp.code_at(self.secrets[token], self.clock()))
        self.clock.advance(STEP)

    async def challenge_token(self) -> str:
        outcome = await self.log_in()
        assert isinstance(outcome, MfaRequired), outcome
        return outcome.challenge_token

    async def fail_second_factor(self, times: int, secret: str) -> None:
        token = await self.challenge_token()
        wrong = wrong_code(secret, self.clock())
        for _ in range(times):
            with pytest.raises(WrongCode):
                await challenge.answer(self.rt, token, wrong, None)

    async def assert_rows_are_the_fold(self) -> Account:
        """The account's and its enrollments' rows equal the fold of the account's events."""
        events = await accounts.events(self.conn, CONTACT)
        folded = Account.folded(CONTACT, ORG, events)
        async with self.conn.transaction():
            row = await accounts.lock(self.conn, CONTACT, ORG)
        assert (folded.version, folded.attempts) == (row.version, row.attempts)
        stored = await enrollments.for_contact(self.conn, CONTACT)
        assert {e.enrollment_id: e.snapshot() for e in fold(CONTACT, ORG, events)} == {
            e.enrollment_id: e.snapshot() for e in stored
        }
        # What is not folded follows what is: an ended enrollment keeps no secret.
        for e in stored:
            assert (e.secret_blob is None) == (e.status == "invalidated"), e
        await self.assert_the_sql_agrees_with_the_rule(events)
        return folded

    async def assert_the_sql_agrees_with_the_rule(self, events: list[Any]) -> None:
        """The login decision reads the enrollment by SQL; the domain rule, from the fold."""
        contact = (await self.rt.projection.contacts(self.conn, [CONTACT]))[0]
        by_rule = current(fold(CONTACT, ORG, events))
        standing = await self.rt.projection.standing(self.conn, ORG, CONTACT, with_enrollment=True)
        picked = standing.enrollment.enrollment_id if standing.enrollment else None
        assert picked == (by_rule.enrollment_id if by_rule else None)
        decision = await login_requirement(self.conn, self.rt.projection, ORG, CONTACT)
        active = by_rule is not None and by_rule.is_active(contact)
        assert decision.enrolled is active
        by_flows = await enrollments.enabled_for(self.conn, CONTACT)
        assert (by_flows.enrollment_id if by_flows else None) == picked


@pytest.fixture
async def world(fresh_database: Callable[..., Awaitable[str]]) -> AsyncIterator[World]:
    pool = await open_pool(await fresh_database("auth_aggregates"), min_size=1, max_size=4)
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    clock = MovableClock(START)
    projection = LoginProjection()
    rt = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, _Ready()),
        secret_box=SecretBox({"k": generate_key()}, "k"),
        clock=clock,
    )
    try:
        async with pool.acquire() as conn:
            await projection.create(conn)
            world = World(rt, clock, conn)
            policy = MfaPolicyEnabled.new(
                org_id=ORG,
                aggregate_id=ORG,
                aggregate_version=1,
                payload=Empty(),
                cause=Cause(actor="admin", at=START),
            )
            async with conn.transaction():
                await AuthProjection(projection).apply(conn, [policy])
            created = ContactCreatedPayload(kind="vendor", display_name="V", email=EMAIL)
            await world.contact_event(ContactCreated, created)
            await world.invite()
            yield world
    finally:
        await pool.close()


async def test_the_rows_are_the_fold_of_the_accounts_events_through_a_contacts_life(
    world: World,
) -> None:
    await world.assert_rows_are_the_fold()

    # Two tabs: two enrollments started; the first verified (after a wrong code), enabled.
    first, second = await world.enrollment_token(), await world.enrollment_token()
    secret = await world.start(first)
    await world.start(second)
    with pytest.raises(WrongEnrollmentCode):
        await enrollment.verify(world.rt, first, wrong_code(secret, world.clock()))
    await world.assert_rows_are_the_fold()
    await world.verify(first)
    await world.assert_rows_are_the_fold()
    await enrollment.enable(world.rt, first)  # replaces the second tab's enrollment
    await world.assert_rows_are_the_fold()

    # A lockout, its end, a success; a backup code is not needed for the fold.
    await world.fail_second_factor(MAX_CONSECUTIVE_FAILURES, secret)
    locked = await world.assert_rows_are_the_fold()
    assert locked.attempts.is_locked(world.clock())
    world.clock.advance(FIRST_LOCKOUT)
    token = await world.challenge_token()
    await challenge.answer(world.rt, token, totp.code_at(secret, world.clock()), None)
    world.clock.advance(STEP)
    await world.assert_rows_are_the_fold()

    # Locked again; an admin's unlock lifts it (recorded by the account).
    await world.fail_second_factor(MAX_CONSECUTIVE_FAILURES, secret)
    with pytest.raises(LockedOut):
        await world.fail_second_factor(1, secret)
    unlock = await world.contact_event(ContactUnlocked, ContactUnlockedPayload(reason="support"))
    lifted = await world.assert_rows_are_the_fold()
    assert not lifted.attempts.is_locked(world.clock())
    assert lifted.attempts.failures_since_success == MAX_CONSECUTIVE_FAILURES
    events = await accounts.events(world.conn, CONTACT)
    assert [(e.payload.by, e.causation_id) for e in events if isinstance(e, MfaLockoutLifted)] == [
        ("unlock", str(unlock.event_id))
    ]

    # A reset ends exactly the enrollments the domain's rule says it ends.
    await world.fail_second_factor(2, secret)
    before = await enrollments.for_contact(world.conn, CONTACT)
    expected = {e.enrollment_id for e in before if e.ends_with_reset(1)}
    assert expected
    reset = await world.contact_event(MfaReset, MfaResetPayload(mfa_epoch=1))
    events = await accounts.events(world.conn, CONTACT)
    ended = {
        e.payload.enrollment_id
        for e in events
        if isinstance(e, MfaEnrollmentInvalidated) and e.causation_id == str(reset.event_id)
    }
    assert ended == expected
    after_reset = await world.assert_rows_are_the_fold()
    assert after_reset.attempts == Account(CONTACT, ORG).attempts

    # Enrolled again at the new epoch; then access is revoked: nothing of it stays.
    again = await world.enrollment_token()
    await world.start(again)
    await world.verify(again)
    await enrollment.enable(world.rt, again)
    await world.assert_rows_are_the_fold()
    await world.contact_event(PortalAccessRevoked, Empty())
    await world.assert_rows_are_the_fold()
    stored = await enrollments.for_contact(world.conn, CONTACT)
    assert {e.status for e in stored} == {"invalidated"}

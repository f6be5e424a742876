"""auth's use cases against a clock the test moves: lockout back-off, token lifetimes, the
±1 time-step window and the monotonic replay guard, without sleeping.

The flows run as the HTTP routes run them (services/auth/flows), on a real PostgreSQL,
with the contact put in place by auth's own projection applying the contacts and
preferences events. Only time is the test's: `AuthRuntime.clock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest

from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.errors import AuthRefusal, NoSession
from services.auth.domain.lockout import FIRST_LOCKOUT, MAX_CONSECUTIVE_FAILURES
from services.auth.domain.results import EnrollmentRequired, MfaRequired, SecondFactorPassed
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.entrypoints.http.problems import problem_for
from services.auth.flows import challenge, enrollment, login, sessions
from services.auth.flows.reactions import AuthProjection
from services.auth.flows.runtime import AuthRuntime
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    MfaPolicyEnabled,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.tokens import hash_token
from tests.integration.movable_clock import START, STEP, MovableClock, wrong_code

pytestmark = pytest.mark.integration

ORG, CONTACT, EMAIL = "acme", "c-1", "v@example.com"
INVITATION, PASSWORD = "an-invitation-token", "correct-horse-battery"
ADDRESS = "192.0.2.7"


@dataclass
class _Ready:
    ready: bool = True


@dataclass
class Enrolled:
    rt: AuthRuntime
    clock: MovableClock
    secret: str

    def code(self, steps_away: int = 0) -> str:
        return totp.code_at(self.secret, self.clock() + steps_away * STEP)

    def wrong_code(self) -> str:
        """A code no step of the window matches."""
        return wrong_code(self.secret, self.clock())

    async def challenge(self) -> str:
        answer = await login.login(self.rt, ORG, EMAIL, PASSWORD, ADDRESS)
        assert isinstance(answer, MfaRequired), answer
        return answer.challenge_token

    async def answer(self, challenge_token: str, otp: str) -> SecondFactorPassed:
        return await challenge.answer(self.rt, challenge_token, otp, None)

    async def refused(self, challenge_token: str, otp: str) -> str:
        with pytest.raises(AuthRefusal) as refusal:
            await self.answer(challenge_token, otp)
        # The problem type the portal API answers it with.
        return problem_for(refusal.value).kind

    async def events(self, event_type: str) -> int:
        async with self.rt.pool.acquire() as conn:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_type = $1", event_type
            )
        return found


@pytest.fixture
async def enrolled(
    fresh_database: Callable[..., Awaitable[str]],
) -> AsyncIterator[Enrolled]:
    """A vendor of an org requiring MFA, enrolled at START; the clock one step later."""
    pool = await open_pool(await fresh_database("auth_clock"), min_size=1, max_size=4)
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    clock = MovableClock(START)
    projection = LoginProjection()
    cause = Cause(actor="admin", at=START)
    events = [
        MfaPolicyEnabled.new(
            org_id=ORG, aggregate_id=ORG, aggregate_version=1, payload=Empty(), cause=cause
        ),
        ContactCreated.new(
            org_id=ORG,
            aggregate_id=CONTACT,
            aggregate_version=1,
            payload=ContactCreatedPayload(kind="vendor", display_name="V", email=EMAIL),
            cause=cause,
        ),
        PortalAccessGranted.new(
            org_id=ORG,
            aggregate_id=CONTACT,
            aggregate_version=2,
            payload=PortalAccessGrantedPayload(
                email=EMAIL,
                invitation_hash=hash_token(INVITATION),
                expires_at=START + timedelta(days=7),
            ),
            cause=cause,
        ),
    ]
    async with pool.acquire() as conn:
        await projection.create(conn)
        async with conn.transaction():
            await AuthProjection(projection).apply(conn, events)  # type: ignore[arg-type]
    rt = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, _Ready()),
        secret_box=SecretBox({"k": generate_key()}, "k"),
        clock=clock,
    )
    try:
        await login.accept_invitation(rt, ORG, INVITATION, PASSWORD, ADDRESS)
        first = await login.login(rt, ORG, EMAIL, PASSWORD, ADDRESS)
        assert isinstance(first, EnrollmentRequired)
        token = first.enrollment_token
        secret = (await enrollment.start(rt, token)).secret
        await enrollment.verify(rt, token, totp.code_at(secret, clock()))
        await enrollment.enable(rt, token)
        # Past the step the enrollment used: its code is spent.
        clock.advance(STEP)
        yield Enrolled(rt, clock, secret)
    finally:
        await pool.close()


async def fail_until_locked(user: Enrolled, challenge_token: str) -> None:
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        assert await user.refused(challenge_token, user.wrong_code()) == "wrong-code"


async def test_the_lockout_lasts_its_time_to_the_second_and_doubles_next_time(
    enrolled: Enrolled,
) -> None:
    user, clock = enrolled, enrolled.clock
    first = await user.challenge()
    await fail_until_locked(user, first)
    # Locked: even the right code is refused, until the last second of the lock.
    assert await user.refused(first, user.code()) == "locked-out"
    clock.advance(FIRST_LOCKOUT - timedelta(seconds=1))
    assert await user.refused(first, user.code()) == "locked-out"
    clock.advance(timedelta(seconds=1))
    assert (await user.answer(first, user.code())).session.token
    assert await user.events("ContactLockedOut") == 1

    # The next lockout doubles: a success in between does not start the back-off over.
    clock.advance(STEP)
    second = await user.challenge()
    await fail_until_locked(user, second)
    clock.advance(2 * FIRST_LOCKOUT - timedelta(seconds=1))
    assert await user.refused(second, user.code()) == "locked-out"
    clock.advance(timedelta(seconds=1))
    third = await user.challenge()
    assert (await user.answer(third, user.code())).session.token
    assert await user.events("ContactLockedOut") == 2


async def test_a_challenge_lives_ten_minutes_and_a_session_twelve_hours(
    enrolled: Enrolled,
) -> None:
    user, clock = enrolled, enrolled.clock
    kept, dropped = await user.challenge(), await user.challenge()
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    session = (await user.answer(kept, user.code())).session.token
    clock.advance(timedelta(seconds=1))
    # Refused for the token, before any code is looked at (a later step's code is fresh).
    assert await user.refused(dropped, user.code(1)) == "invalid-challenge-token"

    # The session was issued a second ago: it ends twelve hours after that.
    clock.advance(timedelta(hours=12) - timedelta(seconds=2))
    assert (await sessions.whoami(user.rt, session)).contact_id == CONTACT
    clock.advance(timedelta(seconds=1))
    with pytest.raises(NoSession) as ended:
        await sessions.whoami(user.rt, session)
    assert problem_for(ended.value).status == 401


async def test_codes_one_step_either_side_are_accepted_and_two_are_not(
    enrolled: Enrolled,
) -> None:
    user, clock = enrolled, enrolled.clock
    clock.advance(10 * STEP)  # far from the steps enrollment used
    token = await user.challenge()
    assert await user.refused(token, user.code(-2)) == "wrong-code"
    assert await user.refused(token, user.code(2)) == "wrong-code"
    assert (await user.answer(token, user.code(-1))).session.token
    # A clock running a step fast: its code works too.
    assert (await user.answer(await user.challenge(), user.code(1))).session.token
    assert await user.events("LoginFailed") == 2


async def test_no_code_of_a_step_at_or_before_the_last_accepted_one_works_again(
    enrolled: Enrolled,
) -> None:
    user, clock = enrolled, enrolled.clock
    clock.advance(10 * STEP)
    used = user.code()
    assert (await user.answer(await user.challenge(), used)).session.token
    # The same code, still inside its window: a replay.
    assert await user.refused(await user.challenge(), used) == "wrong-code"
    # A step ahead, then the step before it: the older code, never used, is refused too
    # (it may have been read over a shoulder), though it is still inside the window.
    assert (await user.answer(await user.challenge(), user.code(1))).session.token
    clock.advance(STEP)
    assert await user.refused(await user.challenge(), user.code(-1)) == "wrong-code"
    assert await user.events("OtpReplayRejected") == 2
    # Time moves on: the next step's code works.
    clock.advance(STEP)
    assert (await user.answer(await user.challenge(), user.code())).session.token

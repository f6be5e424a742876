"""The MFA challenge's cost is its round trips to PostgreSQL (DESIGN.md §9: 1,500 challenges
a second on two cores): a passed challenge sends two statements (`challenge_open` unlocked,
then `challenge_passed`, which reads again under the locks and writes only if nothing
changed, else the locked attempt decides; both shared with the challenges under way at
once: test_challenge_groups.py), and wakes no relay: a login's outcome is published at
the relay's next poll.

What the statements do is the flows' business, covered by test_auth_aggregates.py (rows
are the fold of the events), test_session_end_races.py and the e2e challenge, lockout and
backup-code tests; here: how many, and the replay guard through the combined statements.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import pytest

from services.auth.adapters import accounts, challenges, tokens
from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.errors import InvalidToken, WrongCode
from services.auth.domain.lockout import MAX_CONSECUTIVE_FAILURES
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.flows import challenge
from services.auth.flows.runtime import AuthRuntime
from shared.db import open_pool
from shared.eventstore import OUTBOX_CHANNEL
from shared.tokens import hash_token
from tests.conftest import FreshDatabase
from tests.integration.challenge_setup import ReadyConsumer, enrolled_contact
from tests.integration.movable_clock import START, STEP, MovableClock

pytestmark = pytest.mark.integration

ORG, CONTACT = "org-round-trips", "c-1"


@dataclass
class Setup:
    runtime: AuthRuntime
    url: str
    secret: str
    clock: MovableClock
    statements: list[str] = field(default_factory=list)

    async def challenge_token(self) -> str:
        async with self.runtime.pool.acquire() as conn:
            token, _ = await tokens.issue(conn, "challenge", CONTACT, ORG, self.clock())
        return token


@pytest.fixture
async def setup(fresh_database: FreshDatabase) -> AsyncIterator[Setup]:
    url = await fresh_database("challenge_round_trips")
    # One connection, so every statement of a challenge is seen by this one logger; no
    # reset query on release, as auth's pool (services/auth/main.py).
    pool = await open_pool(url, min_size=1, max_size=1, session_reset=False)
    projection = LoginProjection()
    box = SecretBox({"k": generate_key()}, "k")
    secret = totp.new_secret()
    enrollment_id = uuid.uuid4()
    await enrolled_contact(
        pool,
        projection,
        org=ORG,
        contact=CONTACT,
        box=box,
        secret=secret,
        enrollment_id=enrollment_id,
    )
    clock = MovableClock(START)
    runtime = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, ReadyConsumer()),
        secret_box=box,
        clock=clock,
    )
    found = Setup(runtime, url, secret, clock)
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda logged: found.statements.append(logged.query))
    try:
        yield found
    finally:
        await pool.close()


async def _notified_while(url: str, action: Any) -> list[str]:
    """The outbox wake-ups other connections hear while `action` runs (and shortly after)."""
    heard: list[str] = []
    listener = await asyncpg.connect(url)
    try:
        await listener.add_listener(
            OUTBOX_CHANNEL, lambda _c, _p, channel, _m: heard.append(channel)
        )
        await action()
        await asyncio.sleep(0.3)
        await listener.fetchval("SELECT 1")  # delivered before this answer, if sent
    finally:
        await listener.close()
    return heard


async def test_a_passed_challenge_is_two_statements(setup: Setup) -> None:
    # Once first: asyncpg looks a statement's types up the first time it sees it.
    code = totp.code_at(setup.secret, setup.clock())
    await challenge.answer(setup.runtime, await setup.challenge_token(), code, None)
    setup.clock.advance(STEP)
    token = await setup.challenge_token()
    setup.statements.clear()
    code = totp.code_at(setup.secret, setup.clock())
    passed = await challenge.answer(setup.runtime, token, code, None)
    assert passed.backup_codes_remaining == 0
    # No transaction of the flow's own: the write is one, checking the read under locks.
    # Alone, each is a group of one (nothing waits at low load).
    assert [s.split(" FROM ")[0] for s in setup.statements] == [
        "SELECT t.n, o.*",
        "SELECT item, outcome, failure",
    ], setup.statements
    assert "challenge_open" in setup.statements[0]
    assert "challenge_passed_batch" in setup.statements[1]
    async with setup.runtime.pool.acquire() as conn:
        stored = [e.event_type for e in await accounts.events(conn, CONTACT)]
        session = await tokens.find(conn, passed.session.token, "session", setup.clock())
        used = await conn.fetchval(
            "SELECT used_at FROM tokens WHERE token_hash = $1", hash_token(token)
        )
    assert stored == ["LoginSucceeded", "LoginSucceeded"]
    assert session is not None and session.mfa
    assert used == setup.clock()


async def test_the_same_code_twice_is_a_replay_counted_as_a_failure(setup: Setup) -> None:
    code = totp.code_at(setup.secret, setup.clock())
    await challenge.answer(setup.runtime, await setup.challenge_token(), code, None)
    again = await setup.challenge_token()
    with pytest.raises(WrongCode):
        await challenge.answer(setup.runtime, again, code, None)
    async with setup.runtime.pool.acquire() as conn:
        stored = [e.event_type for e in await accounts.events(conn, CONTACT)]
        account = await accounts.lock_existing(conn, CONTACT)
        live = await tokens.find(conn, again, "challenge", setup.clock())
    assert stored == ["LoginSucceeded", "OtpReplayRejected", "LoginFailed"]
    assert account is not None and account.version == 3
    assert account.attempts.failures == 1
    assert live is not None  # a failed attempt leaves the challenge to be answered again


async def test_a_passed_challenge_waits_for_the_relays_next_poll(setup: Setup) -> None:
    """A login's outcome is published at the relay's next poll, many to a batch: the
    commit notifies nobody, and the event waits in the outbox."""
    token = await setup.challenge_token()
    code = totp.code_at(setup.secret, setup.clock())
    unsent = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
    async with setup.runtime.pool.acquire() as conn:
        before = await conn.fetchval(unsent)

    heard = await _notified_while(
        setup.url, lambda: challenge.answer(setup.runtime, token, code, None)
    )
    assert heard == []
    async with setup.runtime.pool.acquire() as conn:
        assert await conn.fetchval(unsent) == before + 1  # LoginSucceeded, waiting


async def test_a_plain_failure_waits_for_the_poll_the_lockout_wakes_the_relay(
    setup: Setup,
) -> None:
    now = setup.clock()
    valid = {totp.code_at(setup.secret, now + k * STEP) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    token = await setup.challenge_token()

    async def fail() -> None:
        with pytest.raises(WrongCode):
            await challenge.answer(setup.runtime, token, wrong, None)

    for _ in range(MAX_CONSECUTIVE_FAILURES - 1):
        assert await _notified_while(setup.url, fail) == []
    # The failure that locks: audit's readers see ContactLockedOut as it happens.
    assert await _notified_while(setup.url, fail) == [OUTBOX_CHANNEL]


async def _changed_after_the_unlocked_read(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Runs `change` (SQL, on a connection of its own) right after the unlocked read."""
    read = challenges.open_challenges

    async def read_then_change(*args: Any, **kwargs: Any) -> Any:
        opened = await read(*args, **kwargs)
        other = await asyncpg.connect(setup.url)
        try:
            await other.execute(change)
        finally:
            await other.close()
        return opened

    monkeypatch.setattr(challenges, "open_challenges", read_then_change)


async def test_a_change_after_the_unlocked_read_is_decided_on_the_locked_rows(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An applied contact event (any: the version moves) between the read and the write.
    await _changed_after_the_unlocked_read(
        setup, monkeypatch, "UPDATE login_projection.contacts SET version = version + 1"
    )
    token = await setup.challenge_token()
    setup.statements.clear()
    code = totp.code_at(setup.secret, setup.clock())
    passed = await challenge.answer(setup.runtime, token, code, None)
    assert passed.session.token
    # The unlocked write wrote nothing; the locked attempt passed the login once. (Types
    # are looked up on a statement's first use: left out.)
    flow = [s.split("(")[0] for s in setup.statements if not s.startswith(("\n", "WITH"))]
    assert flow[:6] == [
        "SELECT t.n, o.* FROM unnest",
        "SELECT item, outcome, failure FROM challenge_passed_batch",
        "BEGIN;",
        "SELECT * FROM challenge_open",
        "SELECT challenge_passed",
        "COMMIT;",
    ], setup.statements
    async with setup.runtime.pool.acquire() as conn:
        stored = [e.event_type for e in await accounts.events(conn, CONTACT)]
        sessions = await conn.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'")
    assert stored == ["LoginSucceeded"]
    assert sessions == 1


async def test_access_revoked_after_the_unlocked_read_refuses_the_login(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _changed_after_the_unlocked_read(
        setup, monkeypatch, "UPDATE login_projection.contacts SET portal_access = false"
    )
    token = await setup.challenge_token()
    code = totp.code_at(setup.secret, setup.clock())
    with pytest.raises(InvalidToken):
        await challenge.answer(setup.runtime, token, code, None)
    async with setup.runtime.pool.acquire() as conn:
        stored = [e.event_type for e in await accounts.events(conn, CONTACT)]
        sessions = await conn.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'")
        step = await conn.fetchval("SELECT last_time_step FROM enrollments")
    assert (stored, sessions, step) == ([], 0, None)

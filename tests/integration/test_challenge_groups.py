"""Passed challenges committed in groups (services/auth/adapters/challenge_batches.py,
schema.sql `challenge_passed_batch`): concurrent right codes of one auth process share
their statements and their commit, and each still gets exactly the answer it would get
alone: the replay guard, a change since the read, a row another transaction holds, a
version conflict, and a connection lost mid-group (all of it refused, none of it written).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import pytest

from services.auth.adapters import accounts, challenges, tokens
from services.auth.adapters.projection import LoginProjection
from services.auth.domain import totp
from services.auth.domain.errors import InvalidToken, WrongCode
from services.auth.domain.passwords import hash_password
from services.auth.domain.results import SecondFactorPassed
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.flows import challenge
from services.auth.flows.runtime import AuthRuntime
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.eventstore import ConcurrencyConflict
from tests.conftest import FreshDatabase
from tests.integration.movable_clock import START, MovableClock

pytestmark = pytest.mark.integration

ORG = "org-groups"
CONTACTS = 12


@dataclass
class _Ready:
    ready: bool = True


@dataclass
class Setup:
    runtime: AuthRuntime
    url: str
    secrets: dict[str, str]
    clock: MovableClock
    statements: list[str] = field(default_factory=list)

    async def challenge_token(self, contact: str) -> str:
        async with self.runtime.pool.acquire() as conn:
            token, _ = await tokens.issue(conn, "challenge", contact, ORG, self.clock())
        return token

    def code(self, contact: str) -> str:
        return totp.code_at(self.secrets[contact], self.clock())

    def flow_statements(self) -> list[str]:
        """What the flows sent (asyncpg's type lookups on a statement's first use left out)."""
        return [s.split("(")[0] for s in self.statements if not s.startswith(("\n", "WITH"))]

    async def fetchval(self, query: str, *args: object) -> Any:
        async with self.runtime.pool.acquire() as conn:
            return await conn.fetchval(query, *args)


def _contact(n: int) -> str:
    return f"c-{n:02d}"


async def _enroll(conn: asyncpg.Connection, box: SecretBox, projection: LoginProjection) -> str:
    """A contact with a password and an enabled TOTP enrollment; its secret."""
    count = await conn.fetchval(f"SELECT count(*) FROM {projection.schema}.contacts")
    contact = _contact(count)
    secret = totp.new_secret()
    enrollment_id = uuid.uuid4()
    await conn.execute(
        f"INSERT INTO {projection.schema}.contacts (contact_id, org_id, version, kind,"
        " display_name, email, portal_access, mfa_epoch, deleted)"
        " VALUES ($1, $2, 2, 'customer', 'Known', $3, true, 0, false)",
        contact,
        ORG,
        f"{contact}@example.com",
    )
    await conn.execute(
        "INSERT INTO accounts (contact_id, org_id, password_hash) VALUES ($1, $2, $3)",
        contact,
        ORG,
        hash_password("the-right-password"),
    )
    await conn.execute(
        "INSERT INTO enrollments (enrollment_id, contact_id, org_id, status, secret_blob,"
        " mfa_epoch, enrolled_event_id, enabled_at) VALUES ($1, $2, $3, 'enabled', $4, 0,"
        " $5, $6)",
        enrollment_id,
        contact,
        ORG,
        box.seal(secret, enrollment_id.bytes),
        uuid.uuid4(),
        START,
    )
    return secret


@pytest.fixture
async def setup(fresh_database: FreshDatabase) -> AsyncIterator[Setup]:
    url = await fresh_database("challenge_groups")
    # One connection, as auth's pool opens them (no reset query): every statement of the
    # flows is seen by this one logger.
    pool = await open_pool(url, min_size=1, max_size=1, session_reset=False)
    projection = LoginProjection()
    box = SecretBox({"k": generate_key()}, "k")
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    secrets: dict[str, str] = {}
    async with pool.acquire() as conn:
        await projection.create(conn)
        for _ in range(CONTACTS):
            secret = await _enroll(conn, box, projection)
            secrets[_contact(len(secrets))] = secret
    clock = MovableClock(START)
    runtime = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, _Ready()),
        secret_box=box,
        clock=clock,
    )
    found = Setup(runtime, url, secrets, clock)
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda logged: found.statements.append(logged.query))
    try:
        yield found
    finally:
        await pool.close()


async def _answer_all(
    setup: Setup, asked: Sequence[tuple[str, str]]
) -> list[SecondFactorPassed | BaseException]:
    """Every (token, code) answered concurrently, as one process's requests are."""
    return await asyncio.gather(
        *(challenge.answer(setup.runtime, token, code, None) for token, code in asked),
        return_exceptions=True,
    )


async def _burst(setup: Setup) -> list[tuple[str, str]]:
    """A fresh challenge token and the current code of every contact."""
    return [(await setup.challenge_token(c), setup.code(c)) for c in setup.secrets]


async def _stored(setup: Setup, contact: str) -> list[str]:
    async with setup.runtime.pool.acquire() as conn:
        return [e.event_type for e in await accounts.events(conn, contact)]


async def test_a_burst_of_right_codes_passes_in_a_few_statements(setup: Setup) -> None:
    burst = await _burst(setup)
    setup.statements.clear()
    passed = await _answer_all(setup, burst)
    assert all(isinstance(p, SecondFactorPassed) for p in passed), passed
    flow = setup.flow_statements()
    # The first read goes alone (nothing waits at low load); everything queued while it
    # ran goes in the next, and the writes alike: a handful of statements for all twelve,
    # where one each would be 24.
    reads = [s for s in flow if s.startswith("SELECT t.n, o.* FROM unnest")]
    writes = [s for s in flow if s.startswith("SELECT item, outcome, failure FROM")]
    assert len(reads) + len(writes) == len(flow), setup.statements
    assert len(reads) <= 3 and len(writes) <= 3, flow
    assert "BEGIN;" not in flow  # no locked attempt: every item was decided in its group
    sessions = await setup.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'")
    assert sessions == CONTACTS
    for contact in setup.secrets:
        assert await _stored(setup, contact) == ["LoginSucceeded"]
    unused = await setup.fetchval(
        "SELECT count(*) FROM tokens WHERE purpose = 'challenge' AND used_at IS NULL"
    )
    assert unused == 0


async def test_one_code_sent_twice_at_once_passes_once(setup: Setup) -> None:
    """Within one group (two items of one contact: the second reads what the first wrote)
    and across groups alike: one passes, the other is a replay, counted as a failure."""
    contact = _contact(0)
    code = setup.code(contact)
    tokens_ = [await setup.challenge_token(contact) for _ in range(4)]
    burst = [(t, code) for t in tokens_] + await _burst(setup)
    setup.statements.clear()
    answered = await _answer_all(setup, burst)
    mine, others = answered[:4], answered[4:]
    outcomes = Counter(type(a).__name__ for a in mine)
    assert outcomes == {"SecondFactorPassed": 1, "WrongCode": 3}, mine
    # The contact's own fresh token in the burst also carried the same code: of its five
    # codes one passed, four were replays.
    assert isinstance(others[0], WrongCode), others[0]
    assert all(isinstance(a, SecondFactorPassed) for a in others[1:]), others
    stored = await _stored(setup, contact)
    assert Counter(stored) == {"LoginSucceeded": 1, "OtpReplayRejected": 4, "LoginFailed": 4}
    assert stored[0] == "LoginSucceeded"
    account = await setup.fetchval(
        "SELECT mfa_failures FROM accounts WHERE contact_id = $1", contact
    )
    assert account == 4


async def test_the_same_code_in_two_groups_is_a_replay(setup: Setup) -> None:
    contact = _contact(1)
    code = setup.code(contact)
    first = await challenge.answer(setup.runtime, await setup.challenge_token(contact), code, None)
    assert isinstance(first, SecondFactorPassed)
    burst = await _burst(setup)
    answered = await _answer_all(setup, burst)
    assert isinstance(answered[1], WrongCode)
    assert sum(isinstance(a, SecondFactorPassed) for a in answered) == CONTACTS - 1
    assert await _stored(setup, contact) == ["LoginSucceeded", "OtpReplayRejected", "LoginFailed"]


def _change_after_the_read(setup: Setup, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """Runs `change` (SQL, on a connection of its own) after each group's unlocked read."""
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


async def test_a_change_since_the_read_is_decided_on_the_locked_rows(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One contact's projected row moves (any applied event): only its item is decided
    # again, on locked rows; its neighbours pass in the group.
    changed = _contact(2)
    _change_after_the_read(
        setup,
        monkeypatch,
        f"UPDATE login_projection.contacts SET version = version + 1"
        f" WHERE contact_id = '{changed}'",
    )
    burst = await _burst(setup)
    setup.statements.clear()
    answered = await _answer_all(setup, burst)
    assert all(isinstance(a, SecondFactorPassed) for a in answered), answered
    assert setup.flow_statements().count("BEGIN;") >= 1  # the locked attempt
    for contact in setup.secrets:
        assert await _stored(setup, contact) == ["LoginSucceeded"]


async def test_access_revoked_since_the_read_refuses_that_login_only(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    revoked = _contact(3)
    _change_after_the_read(
        setup,
        monkeypatch,
        f"UPDATE login_projection.contacts SET portal_access = false"
        f" WHERE contact_id = '{revoked}'",
    )
    burst = await _burst(setup)
    answered = await _answer_all(setup, burst)
    assert isinstance(answered[3], InvalidToken), answered[3]
    assert sum(isinstance(a, SecondFactorPassed) for a in answered) == CONTACTS - 1
    step = await setup.fetchval(
        "SELECT last_time_step FROM enrollments WHERE contact_id = $1", revoked
    )
    sessions = await setup.fetchval(
        "SELECT count(*) FROM tokens WHERE purpose = 'session' AND contact_id = $1", revoked
    )
    assert (await _stored(setup, revoked), sessions, step) == ([], 0, None)


async def test_a_version_conflict_fails_that_item_only(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account whose next version another writer already stored (an event row beyond
    the account's version): that challenge is refused with the conflict `passed` raises;
    its neighbours in the same group pass."""
    taken = _contact(4)
    burst = await _burst(setup)
    async with setup.runtime.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO events (event_id, aggregate_type, aggregate_id, aggregate_version,"
            " event_type, schema_version, org_id, occurred_at, envelope)"
            " VALUES ($1, 'portal_account', $2, 1, 'LoginFailed', 1, $3, now(), '{}')",
            uuid.uuid4(),
            taken,
            ORG,
        )
    written = challenges.passed_together
    sizes: list[int] = []

    async def counted(conn: asyncpg.Connection, claims: Sequence[Any]) -> Any:
        sizes.append(len(claims))
        return await written(conn, claims)

    monkeypatch.setattr(challenges, "passed_together", counted)
    answered = await _answer_all(setup, burst)
    assert isinstance(answered[4], ConcurrencyConflict), answered[4]
    assert sum(isinstance(a, SecondFactorPassed) for a in answered) == CONTACTS - 1
    assert max(sizes) > 1  # it shared a group
    sessions = await setup.fetchval(
        "SELECT count(*) FROM tokens WHERE purpose = 'session' AND contact_id = $1", taken
    )
    used = await setup.fetchval(
        "SELECT count(*) FROM tokens WHERE contact_id = $1 AND used_at IS NOT NULL", taken
    )
    assert (sessions, used) == (0, 0)


async def test_a_row_another_transaction_holds_goes_to_the_locked_path(
    setup: Setup,
) -> None:
    """The group does not wait for a lock (no group waits behind a slow writer): that item
    is decided alone, after the holder commits; the others pass meanwhile."""
    held = _contact(5)
    burst = await _burst(setup)
    holder = await asyncpg.connect(setup.url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM accounts WHERE contact_id = $1 FOR UPDATE", held)
        answering = asyncio.ensure_future(_answer_all(setup, burst))
        for _ in range(200):
            await asyncio.sleep(0.02)
            # On the holder's connection: the test's pool has one, which the group holds.
            passed = await holder.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'")
            if passed == CONTACTS - 1:
                break
        assert passed == CONTACTS - 1
        assert not answering.done()  # the held one waits, in the locked path
        await tx.commit()
        answered = await answering
    finally:
        await holder.close()
    assert all(isinstance(a, SecondFactorPassed) for a in answered), answered


async def test_a_connection_lost_mid_group_refuses_it_all_and_writes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One challenge first: asyncpg looks the statements' types up on their first use.
    *burst, first = await _burst(setup)
    assert isinstance((await _answer_all(setup, [first]))[0], SecondFactorPassed)
    written = challenges.passed_together
    sizes: list[int] = []

    async def counted(conn: asyncpg.Connection, claims: Sequence[Any]) -> Any:
        sizes.append(len(claims))
        return await written(conn, claims)

    monkeypatch.setattr(challenges, "passed_together", counted)
    # Each group's write waits on the outbox table, well into its items, and its
    # connection is cut there: the first group (one item, at once), then the rest.
    holder = await asyncpg.connect(setup.url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
        answering = asyncio.ensure_future(_answer_all(setup, burst))
        for _ in range(500):
            if answering.done():
                break
            await asyncio.sleep(0.02)
            await holder.execute(
                # The group's statement, or on a connection made again after a cut, the
                # type lookup asyncpg sends first, which waits for the table too.
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND wait_event_type = 'Lock'"
            )
        await tx.rollback()
        answered = await asyncio.wait_for(answering, 30)
    finally:
        await holder.close()
    assert max(sizes) > 1, sizes
    for failure in answered:
        assert isinstance(failure, asyncpg.InterfaceError | asyncpg.PostgresError), failure
    conn = await asyncpg.connect(setup.url)
    try:
        live = await conn.fetchval(
            "SELECT count(*) FROM tokens WHERE purpose = 'challenge' AND used_at IS NULL"
        )
        sessions = await conn.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'")
        events = await conn.fetchval("SELECT count(*) FROM events")
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
        claimed = await conn.fetchval(
            "SELECT count(*) FROM enrollments WHERE last_time_step IS NOT NULL"
        )
        versions = await conn.fetchval("SELECT count(*) FROM accounts WHERE version > 0")
    finally:
        await conn.close()
    assert (live, sessions, events, outbox, claimed, versions) == (len(burst), 1, 1, 1, 1, 1)

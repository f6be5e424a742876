"""The lookup's answers kept in memory stay correct with several auth replicas.

Two replicas (two `DecisionMemory`s, each with its own listener, as two auth processes
have) remember an answer; a third party — another replica's flow or the projection
consumer, writing through its own connection — changes what the answer depends on.
Both replicas must answer the new requirement within §9's 250 ms, also a replica whose
listener is cut just before the change (it can no longer hear it: it must stop trusting
its memory and read the database, whose answer is never less strict).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from services.auth.adapters import decision_memory
from services.auth.adapters.decision_memory import DecisionMemory, enrollment_triggers_sql, listen
from services.auth.adapters.projection import LIVE_SCHEMA, LoginProjection
from services.auth.entrypoints.http.lookup import remembered_login_requirement
from services.auth.flows.runtime import AuthRuntime
from shared.contracts import Empty, MfaPolicyDisabled, MfaReset, MfaResetPayload
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from tests.integration.test_reset_ordering import enroll, event, project, setup_contact

pytestmark = pytest.mark.integration
RESET_BOUND_S = 0.25


class Replica:
    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.cache = DecisionMemory()
        self.runtime = AuthRuntime(
            pool,
            LoginProjection(),
            None,  # type: ignore[arg-type]  # the lookup's helper reads no consumer
            None,  # type: ignore[arg-type]
            lambda: datetime.now(UTC),
            memory=self.cache,
        )
        self.listening = asyncio.create_task(listen(self.cache, url))

    async def requirement(self, contact_id: str) -> str:
        answer = await remembered_login_requirement(self.runtime, self.cache, "acme", contact_id)
        return answer.decision.requirement

    async def until_trusted(self) -> None:
        deadline = time.monotonic() + 10
        while not self.cache.trusted:
            assert time.monotonic() < deadline, "the listener never proved it hears"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.listening.cancel()
        await asyncio.gather(self.listening, return_exceptions=True)


@pytest.fixture
async def db(
    fresh_database: Callable[..., Awaitable[str]],
) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    url = await fresh_database("auth")
    pool = await open_pool(url)
    await apply_schema(
        pool,
        EVENTSTORE_SQL,
        read_sql("services.auth", "schema.sql"),
        enrollment_triggers_sql(LIVE_SCHEMA),
    )
    async with pool.acquire() as conn:
        await LoginProjection().create(conn)
    yield pool, url
    await pool.close()


@pytest.fixture
async def replicas(db: tuple[asyncpg.Pool, str]) -> AsyncIterator[list[Replica]]:
    pool, url = db
    both = [Replica(pool, url), Replica(pool, url)]
    for replica in both:
        await replica.until_trusted()
    yield both
    for replica in both:
        await replica.stop()


async def remembers(replica: Replica, contact_id: str, answer: str) -> None:
    """Ask until the replica keeps the answer in memory (an answer read while the setup's
    own notifications arrive is rightly not kept)."""
    deadline = time.monotonic() + 5
    while True:
        assert await replica.requirement(contact_id) == answer
        kept = replica.cache.get("acme", contact_id)
        if kept is not None:
            assert kept.decision.requirement == answer
            return
        assert time.monotonic() < deadline, "the answer was never kept in memory"
        await asyncio.sleep(0.02)


async def flips(replica: Replica, contact_id: str, to: str) -> float:
    """Seconds until this replica answers `to` (it must, within the reset bound)."""
    started = time.monotonic()
    while (answer := await replica.requirement(contact_id)) != to:
        elapsed = time.monotonic() - started
        assert elapsed < RESET_BOUND_S, f"still {answer!r} after {elapsed * 1e3:.0f} ms"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_an_enrollment_and_a_reset_reach_every_replica(
    db: tuple[asyncpg.Pool, str], replicas: list[Replica]
) -> None:
    pool, _ = db
    await setup_contact(pool, "c1")
    for replica in replicas:
        await remembers(replica, "c1", "enroll")
    # Another replica's flow enables an enrollment: a remembered "enroll" would let a
    # password holder enroll a second authenticator, so it must go at once.
    await enroll(pool, "c1", known_epoch=0)
    for replica in replicas:
        await flips(replica, "c1", "totp")
    # The admin resets MFA; the projection (on whichever replica) applies it.
    await project(pool, event(MfaReset, "c1", 2, MfaResetPayload(mfa_epoch=1, reason="lost")))
    for replica in replicas:
        await flips(replica, "c1", "enroll")


async def test_an_org_policy_change_reaches_every_replica(
    db: tuple[asyncpg.Pool, str], replicas: list[Replica]
) -> None:
    pool, _ = db
    await setup_contact(pool, "c2")
    for replica in replicas:
        await remembers(replica, "c2", "enroll")
    await project(pool, event(MfaPolicyDisabled, "acme", 2, Empty()))
    for replica in replicas:
        await flips(replica, "c2", "password")


async def test_a_replica_that_loses_its_listener_reads_the_database(
    db: tuple[asyncpg.Pool, str], replicas: list[Replica]
) -> None:
    pool, _ = db
    await setup_contact(pool, "c3")
    deaf = replicas[0]
    await remembers(deaf, "c3", "enroll")
    async with pool.acquire() as conn:
        # The bad day: the listening connection is cut (a failover, a network blip)...
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = 'SELECT 1'"
            " AND pid <> pg_backend_pid()"
        )
    assert killed >= 1
    # Off at once (the closed connection is a failure seen), not once the trust window of
    # its last check runs out: a lost listener may mean PostgreSQL is gone.
    cut_at = time.monotonic()
    while deaf.cache.trusted:
        assert time.monotonic() - cut_at < 0.05
        await asyncio.sleep(0.001)
    assert deaf.cache.get("acme", "c3") is None
    assert deaf.cache.state().startswith("off: database failure (the listener saw")
    # ...and the change made while nobody listens is never notified to it.
    await enroll(pool, "c3", known_epoch=0)
    await flips(deaf, "c3", "totp")
    await deaf.until_trusted()  # and it listens again, with its memory cleared


async def test_nothing_read_while_a_change_lands_is_remembered(
    db: tuple[asyncpg.Pool, str], replicas: list[Replica]
) -> None:
    pool, _ = db
    await setup_contact(pool, "c4")
    replica = replicas[0]
    generation = replica.cache.generation
    answer = await remembered_login_requirement(replica.runtime, replica.cache, "acme", "c4")
    replica.cache.changed(f"{decision_memory.CONTACT_PREFIX}c4")  # a change heard meanwhile
    replica.cache.put("acme", "c4", answer, generation)
    assert replica.cache.get("acme", "c4") is None


async def test_the_listener_checks_a_few_times_a_second_and_stays_trusted(
    db: tuple[asyncpg.Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each check is CPU in auth and in PostgreSQL, idle or not (docs/performance.md, the
    # lookup's round): a few a second keep the memory trusted well inside its window.
    _, url = db
    memory = DecisionMemory()
    checks: list[float] = []
    heard = memory.heard_up_to

    def counted(sent_at: float) -> None:
        checks.append(sent_at)
        heard(sent_at)

    monkeypatch.setattr(memory, "heard_up_to", counted)
    listening = asyncio.create_task(listen(memory, url))
    try:
        deadline = time.monotonic() + 10
        while not checks:
            assert time.monotonic() < deadline, "the listener never checked"
            await asyncio.sleep(0.01)
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            assert memory.trusted
            await asyncio.sleep(0.05)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    per_second = sum(1 for at in checks if at >= started) / 2.0
    assert 2 <= per_second <= 6, f"{per_second:g} checks a second"

"""Ending a contact's sessions while a login is issuing one: nothing survives, nothing deadlocks.

The login flows lock in one order — the challenge or enrollment token first, then the
contact's account row — and issue their session inside that transaction. Here a flow's
transaction holds those locks (taken with auth's own adapters, in the flows' order) while
auth's projection applies a reset or a revoke in another connection on a real
PostgreSQL; the flow then issues its session and commits. The session must end anyway,
and PostgreSQL must not have to break a deadlock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.auth.adapters import accounts, tokens
from services.auth.flows.refusal import Refusal
from services.auth.flows.sessions import issue_session
from services.auth.projection import LoginProjection
from services.auth.reactions import AuthProjection
from services.auth.runtime import AuthRuntime
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    Event,
    EventEnvelope,
    MfaReset,
    MfaResetPayload,
    Payload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalAccessRevoked,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql

pytestmark = pytest.mark.integration
# Events are dated at import; tokens are issued at the time of the test (a challenge lives
# 10 minutes, less than a full run of the suite).
NOW = datetime.now(UTC)
CONTACT, ORG = "c1", "acme"


@pytest.fixture
async def auth_db(fresh_database: Callable[..., Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(await fresh_database("auth"), min_size=2, max_size=4)
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    async with pool.acquire() as conn:
        await LoginProjection().create(conn)
    await project(pool, contact_event(ContactCreated, 1), contact_event(PortalAccessGranted, 2))
    yield pool
    await pool.close()


def contact_event(cls: type[EventEnvelope], version: int) -> Event:
    payloads: dict[type[EventEnvelope], Payload] = {
        ContactCreated: ContactCreatedPayload(kind="vendor", display_name="V", email="v@x.io"),
        PortalAccessGranted: PortalAccessGrantedPayload(
            email="v@x.io", invitation_hash="ab" * 32, expires_at=NOW + timedelta(days=7)
        ),
        MfaReset: MfaResetPayload(mfa_epoch=1, reason="lost phone"),
        PortalAccessRevoked: Empty(),
    }
    made: Event = cls.new(  # type: ignore[assignment]
        org_id=ORG,
        aggregate_id=CONTACT,
        aggregate_version=version,
        payload=payloads[cls],
        cause=Cause(actor="admin", at=NOW),
    )
    return made


async def project(pool: asyncpg.Pool, *events: Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await AuthProjection(LoginProjection()).apply(conn, list(events))


async def blocked(pool: asyncpg.Pool, pid: int) -> bool:
    """Whether that backend waits for a lock."""
    async with pool.acquire() as conn:
        waiting: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid
        )
    return waiting


async def apply_while(
    pool: asyncpg.Pool, flow: asyncpg.Connection, ending: Event, then: Callable[[], Awaitable[str]]
) -> str:
    """Apply `ending` in its own connection until it waits on the flow's locks; then let
    the flow go on (`then`, which issues a session) and commit, and the apply finish."""
    async with pool.acquire() as projection_conn:
        pid = projection_conn.get_server_pid()

        async def apply() -> None:
            async with projection_conn.transaction():
                await AuthProjection(LoginProjection()).apply(projection_conn, [ending])

        applying = asyncio.create_task(apply())
        for _ in range(500):
            if await blocked(pool, pid) or applying.done():
                break
            await asyncio.sleep(0.01)
        assert not applying.done(), "the apply should wait for the flow's locks"
        session = await then()
        await flow.execute("COMMIT")
        await asyncio.wait_for(applying, 10)
    return session


async def live(pool: asyncpg.Pool, session: str) -> bool:
    async with pool.acquire() as conn:
        return await tokens.find(conn, session, "session", datetime.now(UTC)) is not None


@pytest.mark.parametrize("ending", [MfaReset, PortalAccessRevoked], ids=["reset", "revoke"])
async def test_a_code_login_holding_its_challenge_is_waited_out_and_its_session_ended(
    auth_db: asyncpg.Pool, ending: type[EventEnvelope]
) -> None:
    async with auth_db.acquire() as conn:
        await accounts.lock(conn, CONTACT, ORG)  # the account exists (a password was set)
        challenge, _ = await tokens.issue(conn, "challenge", CONTACT, ORG, datetime.now(UTC))
    async with auth_db.acquire() as flow:
        # The challenge flow: its token, locked; a right code; then the account, a session.
        await flow.execute("BEGIN")
        held = await tokens.find(flow, challenge, "challenge", datetime.now(UTC), lock=True)
        assert held is not None

        async def finish() -> str:
            await accounts.lock(flow, CONTACT, ORG)  # a deadlock would break here
            assert await tokens.consume(flow, held, datetime.now(UTC))
            session, _ = await tokens.issue(
                flow, "session", CONTACT, ORG, datetime.now(UTC), mfa=True
            )
            return session

        session = await apply_while(auth_db, flow, contact_event(ending, 3), finish)
    assert not await live(auth_db, session)


@pytest.mark.parametrize("ending", [MfaReset, PortalAccessRevoked], ids=["reset", "revoke"])
async def test_a_password_login_holding_the_account_is_waited_out_and_its_session_ended(
    auth_db: asyncpg.Pool, ending: type[EventEnvelope]
) -> None:
    async with auth_db.acquire() as flow:
        # The password login: the account, locked; the decision; then a session.
        await flow.execute("BEGIN")
        await accounts.lock(flow, CONTACT, ORG)

        async def finish() -> str:
            session, _ = await tokens.issue(flow, "session", CONTACT, ORG, datetime.now(UTC))
            return session

        session = await apply_while(auth_db, flow, contact_event(ending, 3), finish)
    assert not await live(auth_db, session)


async def test_a_password_login_that_loses_the_race_to_a_revoke_gets_no_session(
    auth_db: asyncpg.Pool,
) -> None:
    """The password was right when checked (before the account's lock); the revoke that
    cleared it commits before the login takes the lock. A session issued now would be
    refused while access is revoked, and come back to life with the next grant."""
    async with auth_db.acquire() as conn:
        account = await accounts.lock(conn, CONTACT, ORG)
        account.password_hash = "$argon2id$checked-before-the-lock"
        await accounts.save(conn, account)
    await project(auth_db, contact_event(PortalAccessRevoked, 3))

    rt = AuthRuntime(auth_db, LoginProjection(), None, None, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    async with auth_db.acquire() as flow, flow.transaction():
        locked = await accounts.lock(flow, CONTACT, ORG)
        with pytest.raises(Refusal) as refused:
            await issue_session(rt, flow, locked, ["password"], mfa=False)
    assert refused.value.kind == "invalid-credentials"
    async with auth_db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tokens WHERE purpose = 'session'") == 0

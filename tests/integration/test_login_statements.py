"""A failed login costs the same statements whether or not the email exists.

Timing over HTTP is noisy on a loaded machine (tests/e2e/test_login_abuse.py measures it
too); this is the structural half: the database sees the same statements, in the same
transactions, for an unknown email and for a known one with a wrong password.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, cast

import asyncpg
import pytest

from services.auth.adapters import accounts
from services.auth.adapters.projection import LoginProjection
from services.auth.domain.errors import AuthRefusal
from services.auth.domain.passwords import hash_password
from services.auth.entrypoints.http.problems import problem_for
from services.auth.flows import login
from services.auth.flows.runtime import AuthRuntime
from shared.contracts import LoginFailed, LoginFailedPayload, now_utc
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.eventstore import ConcurrencyConflict
from tests.conftest import FreshDatabase

pytestmark = pytest.mark.integration

ORG = "org-statements"
EMAIL = "known@example.com"


@dataclass
class _Ready:
    ready: bool = True


@dataclass
class Recorded:
    runtime: AuthRuntime
    statements: list[str]


@pytest.fixture
async def recorded(fresh_database: FreshDatabase) -> AsyncIterator[Recorded]:
    # One connection, so every statement of a login is seen by this one logger.
    pool = await open_pool(await fresh_database("login"), min_size=1, max_size=1)
    projection = LoginProjection()
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    async with pool.acquire() as conn:
        await projection.create(conn)
        await conn.execute(
            f"INSERT INTO {projection.schema}.contacts (contact_id, org_id, version, kind,"
            " display_name, email, portal_access, mfa_epoch, deleted)"
            " VALUES ('c-1', $1, 2, 'customer', 'Known', $2, true, 0, false)",
            ORG,
            EMAIL,
        )
        await conn.execute(
            "INSERT INTO accounts (contact_id, org_id, password_hash) VALUES ('c-1', $1, $2)",
            ORG,
            hash_password("the-right-password"),
        )
    statements: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda logged: statements.append(logged.query))
    runtime = AuthRuntime(
        pool=pool,
        projection=projection,
        consumer=cast(Any, _Ready()),
        secret_box=cast(Any, None),
        clock=now_utc,
    )
    try:
        yield Recorded(runtime, statements)
    finally:
        await pool.close()


async def failed_login(recorded: Recorded, email: str, address: str) -> list[str]:
    recorded.statements.clear()
    with pytest.raises(AuthRefusal) as refused:
        await login.login(recorded.runtime, ORG, email, "a-wrong-password", address)
    assert problem_for(refused.value).kind == "invalid-credentials"
    # Savepoint names are generated per transaction; the shape is what matters. The one
    # difference allowed: the unknown email's stand-in work is rolled back, not released.
    named = [re.sub(r"__asyncpg_savepoint_\w+__", "sp", s) for s in recorded.statements]
    return [re.sub(r"^(ROLLBACK TO|RELEASE SAVEPOINT) sp;$", "END sp;", s) for s in named]


async def test_an_unknown_email_issues_the_statements_a_wrong_password_does(
    recorded: Recorded,
) -> None:
    # Once each first: asyncpg looks a statement's types up the first time it sees it.
    await failed_login(recorded, EMAIL, "192.0.2.9")
    await failed_login(recorded, "first@example.com", "192.0.2.9")
    known = await failed_login(recorded, EMAIL, "192.0.2.1")
    unknown = await failed_login(recorded, "nobody@example.com", "192.0.2.2")
    assert unknown == known
    # And that shape is the real one: a recorded failure, committed.
    assert any(s.startswith("WITH stored AS ( INSERT INTO events") for s in known), known
    assert known.count("COMMIT;") == 1, known  # the failure (the reservation is one call)


async def test_the_known_email_has_its_failure_recorded_and_the_unknown_leaves_nothing(
    recorded: Recorded,
) -> None:
    await failed_login(recorded, EMAIL, "192.0.2.1")
    await failed_login(recorded, "nobody@example.com", "192.0.2.2")
    async with recorded.runtime.pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT aggregate_id, event_type FROM events ORDER BY aggregate_id"
        )
        stand_ins = await conn.fetchval(
            "SELECT count(*) FROM accounts WHERE contact_id LIKE 'stand-in:%' AND version <> 0"
        )
    assert [(r["aggregate_id"], r["event_type"]) for r in rows] == [("c-1", "LoginFailed")]
    assert stand_ins == 0


async def test_a_successful_login_takes_a_pooled_connection_twice(recorded: Recorded) -> None:
    # Each return to the pool costs a reset round trip (CPU in auth and PostgreSQL on
    # every login): the give-back of the reservation shares the session's connection.
    async def right_login() -> list[str]:
        recorded.statements.clear()
        await login.login(recorded.runtime, ORG, EMAIL, "the-right-password", "192.0.2.5")
        return list(recorded.statements)

    await right_login()  # asyncpg's type look-ups, once
    statements = await right_login()
    assert sum("RESET ALL" in s for s in statements) == 2, statements
    # Still a statement of its own, outside the session's transaction: the address's
    # counter is locked only for it.
    given_back = next(i for i, s in enumerate(statements) if "GREATEST(failures - 1" in s)
    assert statements[given_back + 1] == "BEGIN;", statements
    assert "RESET ALL" in statements[given_back - 1], statements


async def test_a_successful_login_writes_in_four_statements_under_the_lock(
    recorded: Recorded,
) -> None:
    # Every round trip costs CPU in auth and in PostgreSQL, beside argon2's on the same
    # cores: the account is locked by one statement (it exists: its password was just
    # checked), and its event, outbox row and snapshot are one statement.
    async def right_login() -> list[str]:
        recorded.statements.clear()
        await login.login(recorded.runtime, ORG, EMAIL, "the-right-password", "192.0.2.6")
        return list(recorded.statements)

    await right_login()  # asyncpg's type look-ups, once
    statements = await right_login()
    begin = statements.index("BEGIN;")
    assert statements[0].startswith("SELECT password_attempts_reserve("), statements
    session = statements[begin + 1 : statements.index("COMMIT;", begin)]
    assert [s.split(" (")[0].split(",")[0] for s in session] == [
        "SELECT contact_id",  # the account, locked
        "SELECT p.org_id",  # the login requirement
        "INSERT INTO tokens",  # the session
        "WITH stored AS",  # LoginSucceeded, its outbox row, the account's snapshot
    ], session
    async with recorded.runtime.pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT event_type, aggregate_version FROM events WHERE aggregate_id = 'c-1'"
            " ORDER BY aggregate_version"
        )
        queued = await conn.fetchval("SELECT count(*) FROM outbox")
        version = await conn.fetchval("SELECT version FROM accounts WHERE contact_id = 'c-1'")
    assert [(r["event_type"], r["aggregate_version"]) for r in stored] == [
        ("LoginSucceeded", 1),
        ("LoginSucceeded", 2),
    ]
    assert queued == 2 and version == 2


async def test_a_stale_account_version_writes_nothing(recorded: Recorded) -> None:
    # The one statement is all or none: an event whose version another writer took
    # leaves no outbox row and no snapshot behind, and is told as a concurrent change.
    async with recorded.runtime.pool.acquire() as conn, conn.transaction():
        account = await accounts.lock(conn, "c-1", ORG)
        account.record(
            LoginFailed, LoginFailedPayload(reason="wrong_password"), recorded.runtime.cause("c-1")
        )
        await accounts.save(conn, account, wake_relay=False)
    async with recorded.runtime.pool.acquire() as conn:
        async with conn.transaction():
            stale = await accounts.lock(conn, "c-1", ORG)
            stale.version = 0  # as if read before the save above
            stale.attempts = replace(stale.attempts, failures=7)
            stale.record(
                LoginFailed,
                LoginFailedPayload(reason="wrong_password"),
                recorded.runtime.cause("c-1"),
            )
            with pytest.raises(ConcurrencyConflict):
                await accounts.save(conn, stale, wake_relay=False)
            # The transaction is the caller's to end: it is aborted, and rolls back.
            with pytest.raises(asyncpg.InFailedSQLTransactionError):
                await conn.fetchval("SELECT 1")
        queued = await conn.fetchval("SELECT count(*) FROM outbox")
        row = await conn.fetchrow(
            "SELECT version, mfa_failures FROM accounts WHERE contact_id = 'c-1'"
        )
    assert queued == 1
    assert (row["version"], row["mfa_failures"]) == (1, 0)

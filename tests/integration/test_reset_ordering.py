"""A reset wins over an enrollment made before auth saw it, in either arrival order.

Drives auth's projection (with its reactions) and its enrollment store on a real
PostgreSQL, then asks the same decision the login endpoint asks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.auth.adapters import enrollments
from services.auth.decisions import login_requirement
from services.auth.projection import LoginProjection
from services.auth.reactions import AuthProjection
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    EventEnvelope,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    Payload,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def auth_db(fresh_database: Callable[..., Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(await fresh_database("auth"))
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    async with pool.acquire() as conn:
        await LoginProjection().create(conn)
    yield pool
    await pool.close()


def event(
    cls: type[EventEnvelope], aggregate: str, version: int, payload: Payload
) -> EventEnvelope:
    return cls.new(
        org_id="acme",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        cause=Cause(actor="test", at=T0 + timedelta(seconds=version)),
    )


async def project(pool: asyncpg.Pool, *events: EventEnvelope) -> None:
    projection = AuthProjection(LoginProjection())
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply(conn, list(events))  # type: ignore[arg-type]


async def enroll(pool: asyncpg.Pool, contact_id: str, known_epoch: int) -> uuid.UUID:
    """An enrollment enabled by an auth instance that knew `known_epoch`."""
    enrollment_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await enrollments.create(conn, enrollment_id, contact_id, "acme", b"sealed", known_epoch)
        await enrollments.replace_backup_codes(conn, enrollment_id, ["h1", "h2"])
        row = await enrollments.get(conn, enrollment_id)
        assert row is not None
        await enrollments.enable(conn, row, known_epoch, uuid.uuid4(), T0)
    return enrollment_id


async def requirement(pool: asyncpg.Pool, contact_id: str) -> tuple[str, bool]:
    async with pool.acquire() as conn:
        decision = await login_requirement(conn, LoginProjection(), "acme", contact_id)
    return decision.requirement, decision.enrolled


async def setup_contact(pool: asyncpg.Pool, contact_id: str) -> None:
    await project(
        pool,
        event(MfaPolicyEnabled, "acme", 1, Empty()),
        event(
            ContactCreated,
            contact_id,
            1,
            ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com"),
        ),
    )


async def test_enrollment_first_then_reset(auth_db: asyncpg.Pool) -> None:
    await setup_contact(auth_db, "c1")
    enrollment_id = await enroll(auth_db, "c1", known_epoch=0)
    assert await requirement(auth_db, "c1") == ("totp", True)

    reset = event(MfaReset, "c1", 2, MfaResetPayload(mfa_epoch=1, reason="lost phone"))
    await project(auth_db, reset)
    assert await requirement(auth_db, "c1") == ("enroll", False)

    async with auth_db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, secret_blob FROM enrollments WHERE enrollment_id = $1", enrollment_id
        )
        codes = await conn.fetchval("SELECT count(*) FROM backup_codes")
        invalidated = await conn.fetch(
            "SELECT envelope FROM events WHERE event_type = 'MfaEnrollmentInvalidated'"
        )
    assert (row["status"], row["secret_blob"]) == ("invalidated", None)  # crypto-shredded
    assert codes == 0
    assert [e["envelope"]["payload"]["by_epoch"] for e in invalidated] == [1]
    assert invalidated[0]["envelope"]["causation_id"] == str(reset.event_id)

    # Redelivery of the reset changes nothing and records nothing more.
    await project(auth_db, reset)
    async with auth_db.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_type = 'MfaEnrollmentInvalidated'"
            )
            == 1
        )


async def test_reset_first_then_an_enrollment_made_before_auth_saw_it(
    auth_db: asyncpg.Pool,
) -> None:
    await setup_contact(auth_db, "c2")
    await project(auth_db, event(MfaReset, "c2", 2, MfaResetPayload(mfa_epoch=1)))
    # Enabled by an instance that had not yet seen the reset: it recorded epoch 0.
    await enroll(auth_db, "c2", known_epoch=0)
    assert await requirement(auth_db, "c2") == ("enroll", False)

    # An enrollment made knowing the reset is active.
    await enroll(auth_db, "c2", known_epoch=1)
    assert await requirement(auth_db, "c2") == ("totp", True)

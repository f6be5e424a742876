"""Key rotation on a real PostgreSQL: seal under key A, rotate to key B, drop A, still open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from services.auth.adapters import enrollments
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.flows.key_rotation import Rotation, reseal_all
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql

pytestmark = pytest.mark.integration

KEY_A, KEY_B, KEY_LOST = generate_key(), generate_key(), generate_key()
UNDER_A = SecretBox({"a": KEY_A}, "a")
ROTATING = SecretBox({"a": KEY_A, "b": KEY_B}, "b")  # what the operator runs with
ONLY_B = SecretBox({"b": KEY_B}, "b")  # after key A is dropped


@pytest.fixture
async def auth_db(fresh_database: Callable[..., Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(await fresh_database("auth"), min_size=1, max_size=4)
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    yield pool
    await pool.close()


async def enroll(pool: asyncpg.Pool, box: SecretBox, count: int) -> dict[uuid.UUID, str]:
    """`count` enrollments whose secrets are sealed by `box`, as the enrollment flow seals."""
    secrets: dict[uuid.UUID, str] = {}
    async with pool.acquire() as conn:
        for i in range(count):
            enrollment_id = uuid.uuid4()
            secret = f"SECRET{i:026d}"
            blob = box.seal(secret, enrollment_id.bytes)
            await enrollments.create(conn, enrollment_id, f"c{i}", "acme", blob, 0)
            secrets[enrollment_id] = secret
    return secrets


async def sealed(pool: asyncpg.Pool) -> dict[uuid.UUID, bytes]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT enrollment_id, secret_blob FROM enrollments WHERE secret_blob IS NOT NULL"
        )
    return {row["enrollment_id"]: row["secret_blob"] for row in rows}


async def test_every_secret_moves_to_the_new_key_and_opens_without_the_old(
    auth_db: asyncpg.Pool,
) -> None:
    secrets = await enroll(auth_db, UNDER_A, 23)
    # A shredded enrollment has no secret left to re-seal.
    async with auth_db.acquire() as conn:
        await enrollments.shred(conn, "contact_id = $1", "c0")
    del secrets[next(iter(secrets))]

    batches: list[int] = []
    rotation = await reseal_all(
        auth_db, ROTATING, batch_size=5, on_batch=lambda r: batches.append(r.seen)
    )
    assert rotation.summary() == {"resealed": 22, "already_current": 0, "failed": 0}
    assert batches == [5, 10, 15, 20, 22]  # progress, batch by batch

    stored = await sealed(auth_db)
    assert set(stored) == set(secrets)
    for enrollment_id, blob in stored.items():
        assert ONLY_B.key_id_of(blob) == "b"
        # Key A is gone: the secret still opens, bound to its own enrollment.
        assert ONLY_B.open(blob, enrollment_id.bytes) == secrets[enrollment_id]

    again = await reseal_all(auth_db, ROTATING, batch_size=5)
    assert again.summary() == {"resealed": 0, "already_current": 22, "failed": 0}


async def test_an_interrupted_rotation_keeps_its_batches_and_a_rerun_finishes(
    auth_db: asyncpg.Pool,
) -> None:
    secrets = await enroll(auth_db, UNDER_A, 12)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(_: Rotation) -> None:
        raise Interrupted  # Ctrl-C between two batches

    with pytest.raises(Interrupted):
        await reseal_all(auth_db, ROTATING, batch_size=5, on_batch=stop_after_first_batch)
    under = [ROTATING.key_id_of(blob) for blob in (await sealed(auth_db)).values()]
    assert sorted(under) == ["a"] * 7 + ["b"] * 5

    rerun = await reseal_all(auth_db, ROTATING, batch_size=5)
    assert rerun.summary() == {"resealed": 7, "already_current": 5, "failed": 0}
    for enrollment_id, blob in (await sealed(auth_db)).items():
        assert ONLY_B.open(blob, enrollment_id.bytes) == secrets[enrollment_id]


async def test_a_secret_under_a_key_missing_from_the_keyring_is_reported_and_left(
    auth_db: asyncpg.Pool,
) -> None:
    await enroll(auth_db, UNDER_A, 3)
    (lost,) = await enroll(auth_db, SecretBox({"lost": KEY_LOST}, "lost"), 1)
    # A blob copied onto another row fails authentication: it is bound to its enrollment.
    source, victim = await enroll(auth_db, UNDER_A, 2)
    async with auth_db.acquire() as conn:
        await conn.execute(
            "UPDATE enrollments SET secret_blob = (SELECT secret_blob FROM enrollments"
            " WHERE enrollment_id = $1) WHERE enrollment_id = $2",
            source,
            victim,
        )
    before = await sealed(auth_db)

    rotation = await reseal_all(auth_db, ROTATING)
    assert rotation.summary() == {"resealed": 4, "already_current": 0, "failed": 2}
    assert set(rotation.failed) == {lost, victim}
    # Left exactly as it was, for an operator to look at.
    after = await sealed(auth_db)
    assert (after[lost], after[victim]) == (before[lost], before[victim])


async def test_a_login_running_beside_the_rotation_keeps_working(auth_db: asyncpg.Pool) -> None:
    secrets = await enroll(auth_db, UNDER_A, 40)
    ids = list(secrets)
    stop = asyncio.Event()
    opened = 0

    async def keep_logging_in() -> None:
        # What the challenge does: read the enabled enrollment and open its secret, with the
        # service's keyring (old and new key, the new one current).
        nonlocal opened
        while not stop.is_set():
            for enrollment_id in ids:
                async with auth_db.acquire() as conn:
                    found = await enrollments.get(conn, enrollment_id)
                assert found is not None and found.secret_blob is not None
                assert (
                    ROTATING.open(found.secret_blob, enrollment_id.bytes)
                    == (secrets[enrollment_id])
                )
                opened += 1
            await asyncio.sleep(0)

    logins = asyncio.create_task(keep_logging_in())
    rotation = await reseal_all(auth_db, ROTATING, batch_size=3)
    stop.set()
    await logins
    assert rotation.summary()["resealed"] == 40
    assert opened >= 40

"""What a test of the MFA challenge starts from: auth's database with one contact who has
portal access, a password and an enabled TOTP enrollment, and a projection consumer the
test declares ready or not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.auth.adapters.projection import LoginProjection
from services.auth.domain.passwords import hash_password
from services.auth.domain.secret_box import SecretBox
from shared.db import EVENTSTORE_SQL, apply_schema, read_sql
from tests.integration.movable_clock import START

PASSWORD = "the-right-password"


@dataclass
class ReadyConsumer:
    """Stands in for the projection's consumer: the flows only ask whether it is ready."""

    ready: bool = True


async def enrolled_contact(
    pool: asyncpg.Pool,
    projection: LoginProjection,
    *,
    org: str,
    contact: str,
    box: SecretBox,
    secret: str,
    enrollment_id: uuid.UUID,
) -> None:
    """Auth's schema and `projection` on `pool`, with `contact` of `org` projected (portal
    access, MFA epoch 0), its account (password `PASSWORD`) and its TOTP enrollment of
    `secret`, sealed in `box`, enabled at START."""
    await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    async with pool.acquire() as conn:
        await projection.create(conn)
        await conn.execute(
            f"INSERT INTO {projection.schema}.contacts (contact_id, org_id, version, kind,"
            " display_name, email, portal_access, mfa_epoch, deleted)"
            " VALUES ($1, $2, 2, 'customer', 'Known', 'known@example.com', true, 0, false)",
            contact,
            org,
        )
        await conn.execute(
            "INSERT INTO accounts (contact_id, org_id, password_hash) VALUES ($1, $2, $3)",
            contact,
            org,
            hash_password(PASSWORD),
        )
        await conn.execute(
            "INSERT INTO enrollments (enrollment_id, contact_id, org_id, status, secret_blob,"
            " mfa_epoch, enrolled_event_id, enabled_at) VALUES ($1, $2, $3, 'enabled', $4, 0,"
            " $5, $6)",
            enrollment_id,
            contact,
            org,
            box.seal(secret, enrollment_id.bytes),
            uuid.uuid4(),
            START,
        )

"""Bulk set-up straight into a running stack's auth database (never measured).

Creating contacts through the admin commands and enrolling them over HTTP costs two
argon2id hashes and two command round trips per contact: fine for 50 contacts, hours for
1,000,000. The rows these helpers COPY are the ones the projection and the enrollment
flow would write for the same contacts (`login_projection.contacts` /
`org_policies`, `accounts`, `enrollments` sealed with the stack's own secret box,
`tokens` of purpose `challenge` as the password step issues them), so the measured
request runs exactly the code it would after the real steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil

from portal_mfa.infra import ensure_database
from portal_mfa.serve import database_name
from services.auth.adapters.projection import LIVE_SCHEMA
from services.auth.domain import totp
from services.auth.domain.passwords import hash_password
from services.auth.domain.secret_box import SecretBox, parse_keyring
from shared.settings import Settings
from shared.tokens import hash_token, new_token

_PROJECTED = (
    "contact_id",
    "org_id",
    "version",
    "kind",
    "display_name",
    "email",
    "portal_access",
    "invitation_hash",
    "invitation_expires_at",
    "mfa_epoch",
    "reset_event_id",
    "deleted",
)


@dataclass(frozen=True)
class AuthProcess:
    """What the running auth service was started with: its database and its key."""

    pid: int
    database_url: str
    secret_box: SecretBox

    @classmethod
    async def of(cls, pid: int) -> AuthProcess:
        env = psutil.Process(pid).environ()
        settings = Settings.model_validate(
            {
                k.removeprefix("PORTAL_MFA_").lower(): v
                for k, v in env.items()
                if k.startswith("PORTAL_MFA_")
            }
        )
        if not settings.secret_keys or not settings.secret_key_id:
            raise RuntimeError("the auth process has no secret key settings")
        box = SecretBox(parse_keyring(settings.secret_keys), settings.secret_key_id)
        # The setting names the server; the service's own database is found as serve does.
        url = await ensure_database(env["PORTAL_MFA_DATABASE_URL"], database_name("auth"))
        return cls(pid, url, box)

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)


async def project_org(conn: asyncpg.Connection, org_id: str, *, mfa: bool) -> None:
    await conn.execute(
        f"INSERT INTO {LIVE_SCHEMA}.org_policies (org_id, version, mfa_enabled, portal_name)"
        " VALUES ($1, 1, $2, 'Bench') ON CONFLICT (org_id) DO UPDATE SET mfa_enabled = $2",
        org_id,
        mfa,
    )


def contact_ids(org_id: str, count: int, start: int = 0) -> list[str]:
    return [f"{org_id}-c{i}" for i in range(start, start + count)]


def _projected_rows(org_id: str, ids: Sequence[str]) -> Iterator[tuple[object, ...]]:
    for i, contact_id in enumerate(ids):
        yield (
            contact_id,
            org_id,
            2,
            "customer" if i % 2 else "vendor",
            f"Bench {i}",
            f"{contact_id}@bench.example",
            True,
            None,
            None,
            0,
            None,
            False,
        )


async def project_contacts(
    conn: asyncpg.Connection, org_id: str, ids: Sequence[str], *, chunk: int = 100_000
) -> None:
    """Contacts with portal access, as CreateContact + GrantPortalAccess project them."""
    for at in range(0, len(ids), chunk):
        await conn.copy_records_to_table(
            "contacts",
            schema_name=LIVE_SCHEMA,
            columns=_PROJECTED,
            records=_projected_rows(org_id, ids[at : at + chunk]),
        )


@dataclass(frozen=True)
class Enrolled:
    contact_id: str
    secret: str


async def enroll(
    conn: asyncpg.Connection, box: SecretBox, org_id: str, ids: Sequence[str]
) -> list[Enrolled]:
    """An enabled TOTP enrollment per contact (epoch 0), sealed as the service seals it."""
    now = datetime.now(UTC)
    enrolled = [Enrolled(c, totp.new_secret()) for c in ids]
    rows = []
    for e in enrolled:
        enrollment_id = uuid.uuid4()
        blob = box.seal(e.secret, enrollment_id.bytes)
        # enrolled_event_id: the MfaEnrolled event's id, which makes the enrollment count.
        rows.append(
            (enrollment_id, e.contact_id, org_id, "enabled", blob, 0, uuid.uuid4(), now, now)
        )
    # A password is set (a session is issued only to an account that has one); the
    # challenge never verifies it, so one hash serves every contact.
    password_hash = hash_password(new_token())
    await conn.copy_records_to_table(
        "accounts",
        columns=("contact_id", "org_id", "password_hash"),
        records=[(c, org_id, password_hash) for c in ids],
    )
    await conn.copy_records_to_table(
        "enrollments",
        columns=(
            "enrollment_id",
            "contact_id",
            "org_id",
            "status",
            "secret_blob",
            "mfa_epoch",
            "enrolled_event_id",
            "created_at",
            "enabled_at",
        ),
        records=rows,
    )
    return enrolled


async def challenge_tokens(
    conn: asyncpg.Connection, org_id: str, contacts: Sequence[Enrolled], lifetime: timedelta
) -> list[str]:
    """One live challenge token per contact, as a right password answers (shown once)."""
    expires = datetime.now(UTC) + lifetime
    issued = [new_token() for _ in contacts]
    await conn.copy_records_to_table(
        "tokens",
        columns=("token_hash", "purpose", "contact_id", "org_id", "expires_at"),
        records=[
            (hash_token(t), "challenge", c.contact_id, org_id, expires)
            for t, c in zip(issued, contacts, strict=True)
        ],
    )
    return issued

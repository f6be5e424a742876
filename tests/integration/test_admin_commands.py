"""Commands on a real PostgreSQL: only a verified admin's word changes anything (DESIGN.md §11).

The contacts and preferences services are driven with the bytes a command topic would
carry; each refused command must leave the database exactly as it was: no event, no
outbox row, no stored reply, no spent assertion.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contacts.flows import ContactsService
from services.preferences.flows import PreferencesService
from shared.admin_identity import AssertionIssuer, AssertionVerifier
from shared.contracts import (
    Command,
    CommandReply,
    CreateContact,
    EnableMfaPolicy,
    ResetPortalMfa,
    SetPortalName,
    now_utc,
)
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql

pytestmark = pytest.mark.integration

ISSUER = "https://idp.test"
ORG = "acme"


@dataclass
class Services:
    pool: asyncpg.Pool
    issuer: AssertionIssuer
    contacts: ContactsService
    preferences: PreferencesService

    def signed(self, command: Command, sub: str = "alice@acme") -> bytes:
        return command.signed_by(self.issuer, sub).model_dump_json().encode()

    async def state(self) -> dict[str, Any]:
        """Everything a command may write."""
        async with self.pool.acquire() as conn:
            return {
                table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
                for table in (
                    "events",
                    "outbox",
                    "processed_commands",
                    "spent_assertions",
                    "contact_directory",
                )
            }

    async def actors(self) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT envelope FROM events ORDER BY global_position")
        return [r["envelope"]["actor"] for r in rows]


@pytest.fixture
async def services(
    fresh_database: Callable[..., Awaitable[str]],
) -> AsyncIterator[Services]:
    url = await fresh_database("admin_commands")
    pool = await open_pool(url, min_size=2, max_size=6)
    try:
        await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.contacts", "schema.sql"))
        issuer = AssertionIssuer.generate(key_id="idp-1", issuer=ISSUER)
        verifier = AssertionVerifier.from_setting(issuer.trusted_key_entry, issuer=ISSUER)
        yield Services(
            pool,
            issuer,
            ContactsService(pool, verifier, now_utc),
            PreferencesService(pool, verifier, now_utc),
        )
    finally:
        await pool.close()


def rejected(reply: CommandReply, code: str) -> str:
    assert not reply.ok, reply
    assert reply.rejection is not None
    assert reply.rejection.code == code, reply.rejection
    return reply.rejection.message


async def add_contact(services: Services, email: str = "casey@example.com") -> str:
    command = CreateContact(org_id=ORG, kind="customer", display_name="Casey", email=email)
    reply = await services.contacts.execute(services.signed(command))
    assert reply.ok, reply
    assert reply.result["contact_id"] == command.contact_id
    return command.contact_id


async def test_a_verified_admin_is_the_actor_and_replies_name_no_one(services: Services) -> None:
    contact_id = await add_contact(services)
    reset = ResetPortalMfa(org_id=ORG, contact_id=contact_id, reason="lost phone")
    reply = await services.contacts.execute(services.signed(reset, sub="bob@acme"))
    assert reply.ok
    assert reply.result == {
        "contact_id": contact_id,
        "portal_access": False,
        "invitation_expires_at": None,
        "mfa_epoch": 1,
        "deleted": False,
        # Where the reset left the contact (created, reset): a reader can wait for it.
        "position": f"contact:2:{contact_id}",
    }
    named = await services.preferences.execute(
        services.signed(SetPortalName(org_id=ORG, portal_name="Acme Portal"), sub="carol@acme")
    )
    assert named.result == {
        "org_id": ORG,
        "mfa_enabled": False,
        "version": 1,
        "position": f"org_preferences:1:{ORG}",
    }
    assert await services.actors() == ["alice@acme", "bob@acme", "carol@acme"]


async def test_commands_without_a_valid_assertion_change_nothing(services: Services) -> None:
    contact_id = await add_contact(services)
    before = await services.state()
    reset = ResetPortalMfa(org_id=ORG, contact_id=contact_id)
    stranger = AssertionIssuer.generate(key_id="idp-1", issuer=ISSUER)
    unknown_kid = AssertionIssuer.generate(key_id="idp-9", issuer=ISSUER)
    wrong_iss = AssertionIssuer.generate(key_id="idp-1", issuer="https://evil.test")
    # The trusted key itself, but half an hour ago: long expired.
    expired = AssertionIssuer(
        Ed25519PrivateKey.from_private_bytes(base64.b64decode(services.issuer.private_text)),
        key_id="idp-1",
        issuer=ISSUER,
        clock=lambda: datetime.now(UTC) - timedelta(minutes=30),
    )

    def wire(command: Command) -> bytes:
        return command.model_dump_json().encode()

    def minted(**claims: Any) -> str:
        return services.issuer.mint(sub="mallory", cmd=reset.digest(), **claims).token

    attempts: dict[str, tuple[bytes, str]] = {
        "none": (wire(reset), "unauthenticated"),
        "garbage": (wire(reset.signed("not.a.jwt")), "unauthenticated"),
        "a stranger's key": (wire(reset.signed_by(stranger, "mallory")), "unauthenticated"),
        "an unknown kid": (wire(reset.signed_by(unknown_kid, "mallory")), "unauthenticated"),
        "the wrong issuer": (wire(reset.signed_by(wrong_iss, "mallory")), "unauthenticated"),
        "expired": (wire(reset.signed_by(expired, "alice@acme")), "unauthenticated"),
        "another org": (wire(reset.signed(minted(org="globex"))), "forbidden"),
        "audit scope": (wire(reset.signed(minted(org=ORG, scope="audit"))), "forbidden"),
        "not json": (b"\xff{", "unauthenticated"),
        "an actor field instead": (
            json.dumps({**json.loads(wire(reset)), "actor": "ceo"}).encode(),
            "unauthenticated",
        ),
    }
    for name, (body, code) in attempts.items():
        message = rejected(await services.contacts.execute(body), code)
        assert "eyJ" not in message, f"{name}: a token in the reply"
    assert await services.state() == before


async def test_a_captured_command_cannot_be_resent_or_retargeted(services: Services) -> None:
    first = await add_contact(services, "first@example.com")
    second = await add_contact(services, "second@example.com")
    captured = json.loads(
        services.signed(ResetPortalMfa(org_id=ORG, contact_id=first, reason="asked"))
    )
    assert (await services.contacts.execute(json.dumps(captured).encode())).ok
    after_first = await services.state()

    resent = {**captured, "command_id": str(uuid.uuid4())}
    retargeted = {**captured, "contact_id": second}
    both = {**captured, "command_id": str(uuid.uuid4()), "contact_id": second}
    for body in (resent, retargeted, both):
        message = rejected(await services.contacts.execute(json.dumps(body).encode()), "forbidden")
        assert "another command" in message
    # The very same command again is a retry: the first answer, nothing new.
    again = await services.contacts.execute(json.dumps(captured).encode())
    assert again.ok and again.result["mfa_epoch"] == 1
    assert await services.state() == after_first


async def test_a_general_token_authorizes_one_command_by_its_jti(services: Services) -> None:
    # As from PORTAL_MFA_ADMIN_TOKEN: no digest, so the jti is what makes it single-use.
    token = services.issuer.mint(sub="ops@acme", org=ORG).token
    enable = EnableMfaPolicy(org_id=ORG).signed(token)
    reply = await services.preferences.execute(enable.model_dump_json().encode())
    assert reply.ok and reply.result["mfa_enabled"] is True
    after = await services.state()

    rename = SetPortalName(org_id=ORG, portal_name="Hijacked").signed(token)
    message = rejected(
        await services.preferences.execute(rename.model_dump_json().encode()), "forbidden"
    )
    assert "already used" in message
    retry = await services.preferences.execute(enable.model_dump_json().encode())
    assert retry == reply
    assert await services.state() == after
    assert await services.actors() == ["ops@acme"]


async def test_two_commands_racing_with_one_token_one_wins(services: Services) -> None:
    token = services.issuer.mint(sub="ops@acme", org=ORG).token
    bodies = [
        CreateContact(org_id=ORG, kind="vendor", display_name=f"V{i}", email=f"v{i}@example.com")
        .signed(token)
        .model_dump_json()
        .encode()
        for i in range(6)
    ]
    replies = await asyncio.gather(*(services.contacts.execute(b) for b in bodies))
    assert sum(r.ok for r in replies) == 1, replies
    for reply in replies:
        if not reply.ok:
            rejected(reply, "forbidden")
    state = await services.state()
    assert len(state["events"]) == len(state["contact_directory"]) == 1


async def test_an_operator_may_act_on_any_org(services: Services) -> None:
    enable = EnableMfaPolicy(org_id="globex")
    token = services.issuer.mint(sub="operator", org="*", cmd=enable.digest()).token
    reply = await services.preferences.execute(enable.signed(token).model_dump_json().encode())
    assert reply.ok
    assert await services.actors() == ["operator"]


async def test_long_expired_assertions_are_forgotten_and_live_ones_kept(
    services: Services,
) -> None:
    """The spent-assertion table does not grow for ever: a spend prunes what expired an
    hour ago or more, and keeps what a verifier could still accept."""
    now = datetime.now(UTC)
    async with services.pool.acquire() as conn:
        for jti, expires_at in (
            ("long-gone", now - timedelta(hours=2)),
            ("just-expired", now - timedelta(minutes=5)),
            ("live", now + timedelta(minutes=5)),
        ):
            await conn.execute(
                "INSERT INTO spent_assertions (jti, command_id, admin, expires_at)"
                " VALUES ($1, $2, 'alice@acme', $3)",
                jti,
                uuid.uuid4(),
                expires_at,
            )
    await add_contact(services)
    async with services.pool.acquire() as conn:
        kept = {r["jti"] for r in await conn.fetch("SELECT jti FROM spent_assertions")}
    assert {"just-expired", "live"} <= kept
    assert "long-gone" not in kept
    assert len(kept) == 3  # the two kept and the command's own

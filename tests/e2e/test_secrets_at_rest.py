"""Secrets at rest, seen by an attacker who has a copy of auth's database but not its keys."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest

from portal_mfa import dev_state
from portal_mfa.infra.postgres import database_url
from portal_mfa.serve import database_name
from services.auth.domain.backup_codes import normalize
from tests.dev_stack import RunningStack
from tests.e2e.portal_client import Portal

pytestmark = pytest.mark.e2e


def auth_database(stack: RunningStack) -> str:
    """The dev stack's auth database, found where the CLI on this machine finds it."""
    state = dev_state.read(stack.kafka)
    assert state is not None, "the dev stack left no state file"
    return database_url(state["database_url"], database_name("auth"))


async def stored_backup_code_hashes(url: str, contact_id: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT b.code_hash FROM backup_codes b JOIN enrollments e USING (enrollment_id)"
            " WHERE e.contact_id = $1 AND e.status = 'enabled'",
            contact_id,
        )
    finally:
        await conn.close()
    return [row["code_hash"] for row in rows]


def test_a_copied_table_of_backup_codes_does_not_confirm_a_guess(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    enrolled = portal.enroll(user)
    stored = asyncio.run(stored_backup_code_hashes(auth_database(portal.stack), user.contact_id))
    assert len(stored) == len(enrolled.backup_codes) == 10

    # The attacker holds the right codes (say, a phished printout) and the stolen table: a
    # bare SHA-256 would let them confirm each code offline and spot whose codes they are.
    plain = {hashlib.sha256(normalize(c).encode()).hexdigest() for c in enrolled.backup_codes}
    assert not plain & set(stored)

    # The keyed hashes still let the service itself spend a code, once.
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    spent = portal.challenge(challenge_token, backup_code=enrolled.backup_codes[3])
    assert spent.status_code == 200, spent.text
    assert spent.json()["backup_codes_remaining"] == 9

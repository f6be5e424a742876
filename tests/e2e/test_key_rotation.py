"""`portal-mfa keys rotate` against a running stack, while its users keep logging in."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Iterator

import asyncpg
import pytest

from portal_mfa.cli.exit_codes import BAD_SETTING
from services.auth.domain.secret_box import SecretBox
from tests.dev_stack import RunningStack, stack_running
from tests.e2e.portal_client import Portal
from tests.e2e.test_secrets_at_rest import auth_database

pytestmark = pytest.mark.e2e

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
# The services run with both keys, A current; the operator then makes B current.
SERVICES_KEYRING = {
    "PORTAL_MFA_SECRET_KEYS": f"a:{KEY_A},b:{KEY_B}",
    "PORTAL_MFA_SECRET_KEY_ID": "a",
}
ROTATE_TO_B = {**SERVICES_KEYRING, "PORTAL_MFA_SECRET_KEY_ID": "b"}


@pytest.fixture(scope="module")
def keyed_stack() -> Iterator[RunningStack]:
    with stack_running({**SERVICES_KEYRING, "PORTAL_MFA_DEV_SEED": "0"}) as running:
        yield running


def key_ids(stack: RunningStack) -> list[str]:
    async def read() -> list[bytes]:
        conn = await asyncpg.connect(auth_database(stack))
        try:
            rows = await conn.fetch(
                "SELECT secret_blob FROM enrollments WHERE secret_blob IS NOT NULL"
            )
        finally:
            await conn.close()
        return [row["secret_blob"] for row in rows]

    box = SecretBox({"b": base64.b64decode(KEY_B)}, "b")
    return [box.key_id_of(blob) for blob in asyncio.run(read())]


def test_rotation_moves_every_secret_to_the_new_key_while_logins_go_on(
    keyed_stack: RunningStack,
) -> None:
    portal = Portal(keyed_stack)
    try:
        users = portal.prepare("customer", "vendor", "customer", policy=True)
        enrolled = [portal.enroll(user) for user in users]
        assert key_ids(keyed_stack) == ["a"] * 3

        # One user keeps logging in (with backup codes, which open the sealed secret too)
        # for as long as the rotation runs, one row lock per batch.
        done = threading.Event()
        outcomes: list[int] = []

        def keep_logging_in() -> None:
            for code in enrolled[0].backup_codes:
                if done.is_set():
                    return
                challenge_token = portal.login_as(users[0], "mfa_required")["challenge_token"]
                outcomes.append(portal.challenge(challenge_token, backup_code=code).status_code)

        logins = threading.Thread(target=keep_logging_in)
        logins.start()
        rotated = keyed_stack.cli_with(ROTATE_TO_B, "keys", "rotate", "--json", "--batch-size", "1")
        done.set()
        logins.join()
        assert rotated.returncode == 0, rotated.stderr
        summary = json.loads(rotated.stdout)
        assert summary == {"resealed": 3, "already_current": 0, "failed": 0}
        assert outcomes and set(outcomes) == {200}, outcomes
        assert key_ids(keyed_stack) == ["b"] * 3

        # After: every user still logs in with a code from their app, the secret now under B.
        for user, enrollment in zip(users, enrolled, strict=True):
            challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
            answer = portal.challenge(challenge_token, otp=enrollment.app.code())
            assert answer.status_code == 200, answer.text

        # A rerun finds nothing left to do: key A can leave the keyring.
        again = keyed_stack.cli_with(ROTATE_TO_B, "keys", "rotate", "--json")
        assert json.loads(again.stdout) == {"resealed": 0, "already_current": 3, "failed": 0}
    finally:
        portal.close()


def test_rotation_without_a_keyring_is_a_clear_setting_error(keyed_stack: RunningStack) -> None:
    refused = keyed_stack.cli_with(
        {"PORTAL_MFA_SECRET_KEYS": "", "PORTAL_MFA_SECRET_KEY_ID": ""}, "keys", "rotate"
    )
    assert refused.returncode == BAD_SETTING
    assert "PORTAL_MFA_SECRET_KEYS" in refused.stderr
    assert KEY_A not in refused.stderr + refused.stdout

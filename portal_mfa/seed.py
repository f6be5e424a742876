"""Demo data for `portal-mfa dev`, created the way an admin and a portal user would."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

from portal_mfa.command_client import CommandClient
from shared.admin_identity import AssertionIssuer
from shared.contracts import (
    Command,
    CreateContact,
    EnableMfaPolicy,
    GrantPortalAccess,
    SetPortalName,
)
from shared.settings import Settings
from shared.tokens import hash_token, new_token

DEMO_ORG = "demo"
DEMO_EMAIL = "casey@example.com"
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 (published demo credentials of a throwaway stack)


def seed_demo(settings: Settings, issuer: AssertionIssuer) -> list[str]:
    token = new_token()
    commands: list[Command] = [
        SetPortalName(org_id=DEMO_ORG, portal_name="Demo Portal"),
        EnableMfaPolicy(org_id=DEMO_ORG),
        CreateContact(
            org_id=DEMO_ORG,
            contact_id="demo-customer",
            kind="customer",
            display_name="Casey Customer",
            email=DEMO_EMAIL,
        ),
        GrantPortalAccess(
            org_id=DEMO_ORG,
            contact_id="demo-customer",
            invitation_hash=hash_token(token),
        ),
    ]

    async def send_all() -> None:
        async with CommandClient(settings) as client:
            for command in commands:
                # The dev stack's own issuer vouches for the seeding, as "system".
                reply = await client.send(command.signed_by(issuer, "system"))
                if not reply.ok:
                    raise RuntimeError(f"seeding failed: {reply.rejection}")

    asyncio.run(send_all())
    _accept_invitation(settings, token)
    return [
        f"  demo org     {DEMO_ORG} (portal 'Demo Portal', MFA enabled)",
        f"  demo login   {DEMO_EMAIL} / {DEMO_PASSWORD}",
    ]


def _accept_invitation(settings: Settings, token: str, within_s: float = 10.0) -> None:
    """As the demo contact would; retried while the invitation travels to auth."""
    url = f"http://127.0.0.1:{settings.auth_port}/v1/portals/{DEMO_ORG}/invitations/accept"
    body = json.dumps({"token": token, "password": DEMO_PASSWORD}).encode()
    deadline = time.monotonic() + within_s
    while True:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                return
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

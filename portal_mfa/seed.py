"""Demo data for `portal-mfa dev`, created through the same commands an admin would send."""

from __future__ import annotations

import asyncio

from portal_mfa.command_client import CommandClient
from shared.commands import SetPortalName
from shared.settings import Settings

DEMO_ORG = "demo"


def seed_demo(settings: Settings) -> list[str]:
    async def send_all() -> None:
        async with CommandClient(settings) as client:
            reply = await client.send(
                SetPortalName(org_id=DEMO_ORG, actor="system", portal_name="Demo Portal")
            )
            if not reply.ok:
                raise RuntimeError(f"seeding failed: {reply.rejection}")

    asyncio.run(send_all())
    return [f"  demo org     {DEMO_ORG} (portal name 'Demo Portal')"]

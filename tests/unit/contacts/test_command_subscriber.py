"""contacts' own subscriber (entrypoints.command_intake), driven on FastStream's in-memory
broker: a typed command in, a typed reply out; a poison command rejected, never run."""

from __future__ import annotations

import json
import uuid

from faststream.kafka import TestKafkaBroker

from services.contacts.entrypoints import command_intake
from shared.contracts import ADMIN_REPLIES, CONTACTS_COMMANDS, ResetPortalMfa, wire_digest
from tests.unit.subscribers import (
    ISSUER,
    SETTINGS,
    RecordingService,
    listen_for_replies,
    send,
    signed,
)


def signed_but_invalid() -> bytes:
    """A command an admin really signed, that is no contacts command: a bad email."""
    raw = {
        "command_type": "CreateContact",
        "command_id": str(uuid.uuid4()),
        "org_id": "acme",
        "correlation_id": str(uuid.uuid4()),
        "contact_id": "c-1",
        "kind": "customer",
        "display_name": "Casey",
        "email": "not an email",
    }
    token = ISSUER.mint(sub="alice@acme", org="acme", cmd=wire_digest(raw)).token
    return json.dumps({**raw, "assertion": token}).encode()


async def test_a_command_is_answered_and_a_poison_command_rejected() -> None:
    service = RecordingService()
    intake = command_intake(SETTINGS, lambda: service)
    replies = listen_for_replies(intake.broker)
    reset = ResetPortalMfa(org_id="acme", contact_id="c-1", reason="lost phone")

    async with TestKafkaBroker(intake.broker) as broker:
        good = await send(broker, CONTACTS_COMMANDS, signed(reset))
        poison = await send(broker, CONTACTS_COMMANDS, signed_but_invalid())
        # Whatever content-type a sender names, the body is read as the JSON it must be.
        await broker.publish(
            signed(reset),
            topic=CONTACTS_COMMANDS,
            reply_to=ADMIN_REPLIES,
            headers={"content-type": "text/plain"},
        )

    assert [(type(c), c.contact_id, admin) for c, admin in service.ran] == [
        (ResetPortalMfa, "c-1", "alice@acme"),
        (ResetPortalMfa, "c-1", "alice@acme"),
    ]
    (accepted, to_good), (rejected, to_poison), (again, _) = replies
    assert (to_good, to_poison) == (good, poison)
    assert accepted.ok
    assert accepted.command_id == reset.command_id
    assert again.ok
    assert not rejected.ok
    assert rejected.rejection is not None
    assert rejected.rejection.code == "invalid"
    assert rejected.rejection.message.startswith("CreateContact.email:")

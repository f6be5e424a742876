"""preferences' own subscriber (entrypoints.command_intake), driven on FastStream's
in-memory broker: a typed command in, a typed reply out; a poison command rejected."""

from __future__ import annotations

from faststream.kafka import TestKafkaBroker

from services.preferences.entrypoints import command_intake
from shared.contracts import PREFERENCES_COMMANDS, SetPortalName
from tests.unit.subscribers import (
    SETTINGS,
    RecordingService,
    listen_for_replies,
    not_json,
    send,
    signed,
)


async def test_a_command_is_answered_and_a_poison_command_rejected() -> None:
    service = RecordingService()
    intake = command_intake(SETTINGS, lambda: service)
    replies = listen_for_replies(intake.broker)
    rename = SetPortalName(org_id="acme", portal_name="Acme Portal")

    async with TestKafkaBroker(intake.broker) as broker:
        good = await send(broker, PREFERENCES_COMMANDS, signed(rename))
        poison = await send(broker, PREFERENCES_COMMANDS, not_json())
        unsigned = await send(broker, PREFERENCES_COMMANDS, rename.model_dump_json().encode())
        await send(broker, PREFERENCES_COMMANDS, signed(rename), reply=False)

    # The handler got the typed command and the admin the assertion named.
    ran, admin = service.ran[0]
    assert isinstance(ran, SetPortalName)
    assert ran.portal_name == "Acme Portal"
    assert admin == "alice@acme"
    # Only admitted commands reached it: the poison and the unsigned one did not.
    assert len(service.ran) == 2
    # One reply per command that asked for one, under its correlation id, none otherwise.
    assert [correlation for _, correlation in replies] == [good, poison, unsigned]
    accepted, rejected_poison, rejected_unsigned = (reply for reply, _ in replies)
    assert accepted.ok
    assert accepted.command_id == rename.command_id
    assert not rejected_poison.ok
    assert rejected_poison.rejection is not None
    assert rejected_poison.rejection.code == "unauthenticated"
    assert rejected_poison.rejection.message == "command is not JSON"
    assert rejected_unsigned.rejection is not None
    assert rejected_unsigned.rejection.code == "unauthenticated"

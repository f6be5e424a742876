"""What the command-subscriber tests share: a service that records what reaches it, and the
replies the subscriber publishes, read off FastStream's in-memory broker.

In-memory on purpose: these prove the subscriber's wiring (types, admission, replies) in a
unit test. That commands cross processes on the real broker is proved by tests/e2e and
tests/faults.
"""

from __future__ import annotations

import json
import uuid

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.admin_identity import AdminAssertion, AssertionIssuer, AssertionVerifier
from shared.contracts import ADMIN_REPLIES, Command, CommandReply
from shared.settings import Settings

ISSUER = AssertionIssuer.generate(key_id="idp-unit", issuer="https://idp.unit")
# What the broker address and subscriber options come from; nothing connects.
SETTINGS = Settings.model_construct()


class RecordingService:
    """Accepts every command it is handed, and remembers it with its verified admin."""

    def __init__(self) -> None:
        self.verifier = AssertionVerifier.from_setting(
            ISSUER.trusted_key_entry, issuer=ISSUER.issuer
        )
        self.ran: list[tuple[Command, str]] = []

    async def run(self, command: Command, admin: AdminAssertion) -> CommandReply:
        self.ran.append((command, admin.sub))
        return CommandReply.accepted(command.command_id, {"org_id": command.org_id})


def listen_for_replies(broker: KafkaBroker) -> list[tuple[CommandReply, str | None]]:
    """Every reply published to the admin reply topic, with its correlation id."""
    heard: list[tuple[CommandReply, str | None]] = []

    @broker.subscriber(ADMIN_REPLIES)
    async def admin_replies(reply: CommandReply, message: KafkaMessage) -> None:
        heard.append((reply, message.correlation_id))

    return heard


async def send(broker: KafkaBroker, topic: str, body: bytes, *, reply: bool = True) -> str:
    """Publish as the console does (tests/e2e: the real one); returns the correlation id."""
    correlation = str(uuid.uuid4())
    await broker.publish(
        body,
        topic=topic,
        correlation_id=correlation,
        reply_to=ADMIN_REPLIES if reply else "",
        headers={"content-type": "application/json"},
    )
    return correlation


def signed(command: Command, sub: str = "alice@acme") -> bytes:
    return command.signed_by(ISSUER, sub).model_dump_json().encode()


def not_json() -> bytes:
    return json.dumps({"command_type": "EnableMfaPolicy"}).encode()[:-3]

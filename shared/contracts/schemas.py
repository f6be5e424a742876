"""The JSON Schema documents of the contracts, generated from the models and committed.

`python -m shared.contracts` writes them into docs/schemas/; a unit test fails when the
committed files differ from what the models generate (tests/unit/shared/
test_contract_documents.py), so a contract changes only on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from shared.contracts.contacts_commands import ContactsCommand
from shared.contracts.events import EVENT_ADAPTER
from shared.contracts.preferences_commands import PreferencesCommand
from shared.contracts.replies import CommandReply

# Every command either service accepts, told apart by `command_type` as on the wire.
AnyCommand = Annotated[PreferencesCommand | ContactsCommand, Field(discriminator="command_type")]
REGENERATE = "python -m shared.contracts"


def event_json_schema() -> dict[str, Any]:
    """What a consumer reads: every event envelope as serialized."""
    return EVENT_ADAPTER.json_schema(mode="serialization")


def command_json_schema() -> dict[str, Any]:
    """What a sender writes: every command as validated by its owning service."""
    return TypeAdapter(AnyCommand).json_schema(mode="validation")


def reply_json_schema() -> dict[str, Any]:
    return CommandReply.model_json_schema(mode="serialization")


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "events.schema.json": event_json_schema,
    "commands.schema.json": command_json_schema,
    "replies.schema.json": reply_json_schema,
}


def as_text(schema: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in SCHEMAS.items():
        path = directory / name
        path.write_text(as_text(schema()))
        written.append(path)
    return written

"""The committed contract documents are what the code generates (regenerate on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal_mfa.cli.docs import asyncapi_json
from shared.contracts import EVENT_TOPICS, EVENT_TYPES
from shared.contracts.schemas import REGENERATE, SCHEMAS, as_text

DOCS = Path(__file__).resolve().parents[3] / "docs"
REGENERATE_ASYNCAPI = "regenerate with `portal-mfa docs asyncapi --out docs/asyncapi.json`"


def test_asyncapi_document_is_pinned() -> None:
    assert (DOCS / "asyncapi.json").read_text() == asyncapi_json(), REGENERATE_ASYNCAPI


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_is_pinned(name: str) -> None:
    committed = (DOCS / "schemas" / name).read_text()
    assert committed == as_text(SCHEMAS[name]()), f"regenerate with `{REGENERATE}`"


def test_asyncapi_names_every_topic_and_event() -> None:
    document = json.loads(asyncapi_json())
    channels = {c["address"] for c in document["channels"].values()}
    assert set(EVENT_TOPICS) <= channels
    schemas = document["components"]["schemas"]
    assert set(EVENT_TYPES) <= set(schemas)


def test_asyncapi_names_the_commands_each_subscriber_takes() -> None:
    """From the services' own subscribers: each command topic with its commands, the reply."""
    document = json.loads(asyncapi_json())
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]

    def one_of(message: str) -> set[str]:
        payload = messages[message]["payload"]
        ref = payload.get("$ref", "")
        body = schemas[ref.rsplit("/", 1)[-1]] if ref else payload
        return {r["$ref"].rsplit("/", 1)[-1] for r in body.get("oneOf", body.get("anyOf", []))}

    assert one_of("portal.preferences.commands:SubscribeMessage") == {
        "EnableMfaPolicy",
        "DisableMfaPolicy",
        "SetPortalName",
    }
    assert "ResetPortalMfa" in one_of("portal.contacts.commands:SubscribeMessage")
    assert "CommandReply" in schemas

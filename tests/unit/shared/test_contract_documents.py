"""The committed contract documents are what the code generates (regenerate on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

from portal_mfa.cli.docs import asyncapi_json, events_schema_json
from shared.events import EVENT_TOPICS, EVENT_TYPES

DOCS = Path(__file__).resolve().parents[3] / "docs"
REGENERATE = "regenerate with `portal-mfa docs asyncapi --out docs/asyncapi.json` (or json-schema)"


def test_asyncapi_document_is_pinned() -> None:
    assert (DOCS / "asyncapi.json").read_text() == asyncapi_json(), REGENERATE


def test_event_schema_is_pinned() -> None:
    assert (DOCS / "events.schema.json").read_text() == events_schema_json(), REGENERATE


def test_asyncapi_names_every_topic_and_event() -> None:
    document = json.loads(asyncapi_json())
    channels = {c["address"] for c in document["channels"].values()}
    assert set(EVENT_TOPICS) <= channels
    schemas = document["components"]["schemas"]
    assert set(EVENT_TYPES) <= set(schemas)

"""`portal-mfa docs`: the contract documents, generated from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

docs = typer.Typer(help="Write the contract documents for consumers.")
Out = Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")]


def asyncapi_json() -> str:
    """From the brokers the services run: their subscribers as bootstrap builds them."""
    from services.contacts.entrypoints import command_intake as contacts
    from services.preferences.entrypoints import command_intake as preferences
    from shared.asyncapi import DOCUMENTED_BOOTSTRAP, specification
    from shared.settings import Settings

    # Only what the document shows is set: no environment, no keys, nothing started.
    settings = Settings.model_construct(kafka_bootstrap=DOCUMENTED_BOOTSTRAP)
    brokers = [preferences(settings, _not_running).broker, contacts(settings, _not_running).broker]
    document = json.loads(specification(*brokers).to_specification().to_json())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _not_running() -> NoReturn:
    raise RuntimeError("documenting a service, not running it")


def events_schema_json() -> str:
    from shared.contracts.schemas import as_text, event_json_schema

    return as_text(event_json_schema())


def _write(text: str, out: Path | None) -> None:
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)


@docs.command("asyncapi", help="The AsyncAPI document of every topic (JSON).")
def asyncapi(out: Out = None) -> None:
    _write(asyncapi_json(), out)


@docs.command(
    "json-schema",
    help="JSON Schema of every event envelope (`python -m shared.contracts` writes those of"
    " the commands and replies too).",
)
def json_schema(out: Out = None) -> None:
    _write(events_schema_json(), out)

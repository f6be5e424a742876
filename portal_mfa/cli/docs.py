"""`portal-mfa docs`: the contract documents, generated from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

docs = typer.Typer(help="Write the contract documents for consumers.")
Out = Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")]


def asyncapi_json() -> str:
    from shared.asyncapi import specification

    document = json.loads(specification().to_specification().to_json())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def events_schema_json() -> str:
    from shared.events import event_json_schema

    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


def _write(text: str, out: Path | None) -> None:
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)


@docs.command("asyncapi", help="The AsyncAPI document of every topic (JSON).")
def asyncapi(out: Out = None) -> None:
    _write(asyncapi_json(), out)


@docs.command("json-schema", help="JSON Schema of every event envelope.")
def json_schema(out: Out = None) -> None:
    _write(events_schema_json(), out)

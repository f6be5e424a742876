"""contacts wired: its use cases on a pool, its subscriber and HTTP reads around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from services.contacts import entrypoints
from services.contacts.flows import ContactsService
from shared.admin_identity import AssertionVerifier
from shared.command_service import command_service_app
from shared.db import read_sql
from shared.settings import Settings
from shared.signing import RecordSigner


def bootstrap(
    *,
    settings: Settings,
    database_url: str,
    verifier: AssertionVerifier,
    signer: RecordSigner,
    clock: Callable[[], datetime],
) -> FastAPI:
    return command_service_app(
        service=lambda pool: ContactsService(pool, verifier, clock),
        intake=entrypoints.command_intake,
        reads=entrypoints.router,
        schema=read_sql("services.contacts", "schema.sql"),
        settings=settings,
        database_url=database_url,
        signer=signer,
        verifier=verifier,
    )

"""contacts wired: its use cases on a pool, its subscriber and HTTP reads around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from services.contacts import entrypoints
from services.contacts.flows import ContactsService
from shared.admin_identity import AssertionVerifier
from shared.command_service import Started, command_service_app
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
    service = Started(lambda pool: ContactsService(pool, verifier, clock))
    return command_service_app(
        intake=entrypoints.command_intake(settings, service),
        service=service,
        settings=settings,
        database_url=database_url,
        schema=read_sql("services.contacts", "schema.sql"),
        signer=signer,
        verifier=verifier,
        reads=entrypoints.router,
    )

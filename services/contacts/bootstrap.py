"""contacts wired: its use cases on a pool, its subscriber and HTTP reads around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg
from fastapi import FastAPI

from services.contacts import entrypoints
from services.contacts.flows import ContactsService
from shared.admin_identity import AssertionVerifier
from shared.command_service import command_service_app
from shared.db import read_sql
from shared.http.problems import install_problem_handlers
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
    running: list[ContactsService] = []

    def start(pool: asyncpg.Pool) -> ContactsService:
        running[:] = [ContactsService(pool, verifier, clock)]
        return running[0]

    app = command_service_app(
        intake=entrypoints.command_intake(settings, lambda: running[0]),
        settings=settings,
        database_url=database_url,
        schema=read_sql("services.contacts", "schema.sql"),
        signer=signer,
        start=start,
        reads=entrypoints.router,
    )
    app.state.admin_verifier = verifier
    install_problem_handlers(app)
    return app

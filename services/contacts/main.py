"""contacts entry point: wires the command service around the contact handlers."""

from __future__ import annotations

from fastapi import FastAPI

from services.contacts import reads
from services.contacts.handlers import ContactsService
from shared.admin_identity import verifier_from
from shared.command_service import command_service_app
from shared.db import read_sql
from shared.events import CONTACTS_COMMANDS, now_utc
from shared.http.problems import install_problem_handlers
from shared.settings import Settings


def create_app(settings: Settings, database_url: str) -> FastAPI:
    verifier = verifier_from(settings)
    app = command_service_app(
        name="contacts",
        settings=settings,
        database_url=database_url,
        command_topic=CONTACTS_COMMANDS,
        schema=read_sql("services.contacts", "schema.sql"),
        build=lambda pool: ContactsService(pool, verifier, now_utc),
        reads=reads.router,
    )
    app.state.admin_verifier = verifier
    install_problem_handlers(app)
    return app

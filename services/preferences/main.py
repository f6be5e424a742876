"""preferences entry point: wires the command service around the org-preferences handlers."""

from __future__ import annotations

from fastapi import FastAPI

from services.preferences import reads
from services.preferences.handlers import PreferencesService
from shared.admin_identity import verifier_from
from shared.command_service import command_service_app
from shared.events import PREFERENCES_COMMANDS, now_utc
from shared.http.problems import install_problem_handlers
from shared.settings import Settings


def create_app(settings: Settings, database_url: str) -> FastAPI:
    verifier = verifier_from(settings)
    app = command_service_app(
        name="preferences",
        settings=settings,
        database_url=database_url,
        command_topic=PREFERENCES_COMMANDS,
        schema="",
        build=lambda pool: PreferencesService(pool, verifier, now_utc),
        reads=reads.router,
    )
    app.state.admin_verifier = verifier
    install_problem_handlers(app)
    return app

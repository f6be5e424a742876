"""preferences wired: its use cases on a pool, its subscriber and HTTP reads around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg
from fastapi import FastAPI

from services.preferences import entrypoints
from services.preferences.flows import PreferencesService
from shared.admin_identity import AssertionVerifier
from shared.command_service import command_service_app
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
    running: list[PreferencesService] = []

    def start(pool: asyncpg.Pool) -> PreferencesService:
        running[:] = [PreferencesService(pool, verifier, clock)]
        return running[0]

    app = command_service_app(
        intake=entrypoints.command_intake(settings, lambda: running[0]),
        settings=settings,
        database_url=database_url,
        schema="",
        signer=signer,
        start=start,
        reads=entrypoints.router,
    )
    app.state.admin_verifier = verifier
    install_problem_handlers(app)
    return app

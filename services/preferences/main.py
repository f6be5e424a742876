"""preferences' process: settings -> bootstrap (`portal-mfa serve preferences` runs it)."""

from __future__ import annotations

from fastapi import FastAPI

from services.preferences.bootstrap import bootstrap
from shared.admin_identity import verifier_from
from shared.contracts import now_utc
from shared.settings import Settings
from shared.signing_settings import signer_from


def create_app(settings: Settings, database_url: str) -> FastAPI:
    # Refuse to start without a key: everything this service publishes must be signed.
    signer = signer_from(settings, "preferences")
    return bootstrap(
        settings=settings,
        database_url=database_url,
        verifier=verifier_from(settings),
        signer=signer,
        clock=now_utc,
    )

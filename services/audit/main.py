"""audit entry point: stores every event from offset 0 and answers the log's readers.

It applies only records a trusted owner signed, and keeps the signatures: `/v1/verify`
checks the stored log against them and against each org's hash chain.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.audit.bootstrap import bootstrap
from shared.admin_identity import verifier_from
from shared.contracts import now_utc
from shared.settings import Settings
from shared.signing_settings import trust_from


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """Settings to app (run by `portal-mfa serve audit`); a bad setting refuses here."""
    return bootstrap(
        settings,
        database_url,
        trust=trust_from(settings),
        admin_verifier=verifier_from(settings),
        clock=now_utc,
    )

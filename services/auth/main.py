"""auth's process entry: settings in, `bootstrap()` out (served by `portal_mfa.serve`)."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.auth.bootstrap import Adapters, bootstrap
from services.auth.domain.secret_box import SecretBox, parse_keyring
from shared.admin_identity import verifier_from
from shared.db import open_pool
from shared.kafka import new_producer
from shared.settings import Settings, SettingsError
from shared.signing_settings import signer_from, trust_from


def secret_box_from(settings: Settings) -> SecretBox:
    if not settings.secret_keys or not settings.secret_key_id:
        raise SettingsError(
            "invalid setting PORTAL_MFA_SECRET_KEYS: auth needs a key to seal TOTP secrets"
            " (with PORTAL_MFA_SECRET_KEY_ID naming the current one)"
        )
    try:
        return SecretBox(parse_keyring(settings.secret_keys), settings.secret_key_id)
    except (ValueError, KeyError) as exc:
        raise SettingsError(f"invalid setting PORTAL_MFA_SECRET_KEYS: {exc}") from None


def create_app(settings: Settings, database_url: str) -> FastAPI:
    adapters = Adapters(
        open_database=partial(open_pool, database_url, max_size=20, session_reset=False),
        new_producer=partial(new_producer, settings),
        database_url=database_url,
        secret_box=secret_box_from(settings),
        signer=signer_from(settings, "auth"),
        trust=trust_from(settings),
        admin_verifier=verifier_from(settings),
    )
    return bootstrap(settings, adapters)

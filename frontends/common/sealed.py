"""Session cookies sealed with AES-GCM: the browser holds them but can neither read nor
change them, and a cookie sealed for one purpose (or one org) does not open as another.

The frontends keep no server-side session store, so any replica can serve any request
(the services scale the same way). What a cookie holds is short-lived: a one-time token
from auth (enrollment, challenge) or a session token, plus the form's CSRF token.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.settings import Settings, SettingsError

NONCE_BYTES = 12
MAX_COOKIE_CHARS = 3800  # below the 4096 bytes browsers keep per cookie


class CookieSealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the cookie key is 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, value: dict[str, Any], *, purpose: str, lifetime_s: int) -> str:
        body = json.dumps({**value, "exp": int(time.time()) + lifetime_s}).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, body, purpose.encode())
        text = base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        if len(text) > MAX_COOKIE_CHARS:
            raise ValueError("a sealed cookie would be too large for a browser")
        return text

    def open(self, text: str | None, *, purpose: str) -> dict[str, Any] | None:
        """The value, or None for anything missing, tampered with, for another purpose or
        expired: every such cookie is simply no session."""
        if not text or len(text) > MAX_COOKIE_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
            value = json.loads(body)
        except (binascii.Error, ValueError, InvalidTag):
            return None
        if not isinstance(value, dict) or not isinstance(value.get("exp"), int):
            return None
        if value["exp"] < time.time():
            return None
        return value


def sealer_from(settings: Settings) -> CookieSealer:
    """The configured key; in dev without one, a key of this process (sessions end with it)."""
    text = settings.web_cookie_key.get_secret_value()
    if not text:
        if settings.profile == "dev":
            return CookieSealer(os.urandom(32))
        raise SettingsError(
            "invalid setting PORTAL_MFA_WEB_COOKIE_KEY: the web frontends need a key to seal"
            " their session cookies (base64 of 32 random bytes)"
        )
    try:
        return CookieSealer(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise SettingsError(
            "invalid setting PORTAL_MFA_WEB_COOKIE_KEY: expected base64 of 32 bytes"
        ) from None

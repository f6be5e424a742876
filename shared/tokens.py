"""Opaque bearer tokens (challenge, enrollment, session), stored only as hashes."""

import hashlib
import secrets
from typing import Final

TOKEN_BYTES: Final = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

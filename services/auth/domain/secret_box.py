"""Authenticated encryption (AES-256-GCM) of TOTP secrets at rest, with rotatable keys.

A sealed blob is: version byte | key id length byte | key id | 12-byte nonce | ciphertext.
The key id travels inside the blob, so blobs sealed under an older key stay readable
while that key is kept in the keyring.
"""

import base64
import binascii
import re
import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_VERSION: Final = 1
_TAG_BYTES: Final = 16
_KEY_ID_FORMAT: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class SecretUnreadable(Exception):
    """A sealed secret could not be opened: wrong or unknown key, or tampered data."""


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def parse_keyring(text: str) -> dict[str, bytes]:
    """Parse `"k1:<base64 key>,k2:<base64 key>"`; errors name the key id, never the key."""
    keyring: dict[str, bytes] = {}
    for position, entry in enumerate(text.split(","), start=1):
        key_id, separator, encoded = entry.strip().partition(":")
        key_id = key_id.strip()
        if not separator:
            # The entry may be a bare key, so it is not echoed.
            raise ValueError(f"keyring entry {position} is not of the form <key id>:<base64 key>")
        _check_key_id(key_id)
        if key_id in keyring:
            raise ValueError(f"keyring key id {key_id!r} appears more than once")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise ValueError(f"keyring key {key_id!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"keyring key {key_id!r} must decode to {KEY_BYTES} bytes")
        keyring[key_id] = key
    return keyring


class SecretBox:
    def __init__(self, keyring: dict[str, bytes], current_key_id: str) -> None:
        for key_id, key in keyring.items():
            _check_key_id(key_id)
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes")
        if current_key_id not in keyring:
            raise ValueError(f"current key id {current_key_id!r} is not in the keyring")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.items()}
        self._current_key_id = current_key_id

    @property
    def current_key_id(self) -> str:
        return self._current_key_id

    def seal(self, plaintext: str, associated_data: bytes) -> bytes:
        header = _header(self._current_key_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = self._ciphers[self._current_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), header + associated_data
        )
        return header + nonce + ciphertext

    def open(self, blob: bytes, associated_data: bytes) -> str:
        key_id, body_start = _read_header(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretUnreadable(f"sealed with key id {key_id!r}, which is not in the keyring")
        nonce = blob[body_start : body_start + NONCE_BYTES]
        ciphertext = blob[body_start + NONCE_BYTES :]
        if len(ciphertext) < _TAG_BYTES:
            raise SecretUnreadable("sealed secret is truncated")
        try:
            plaintext = cipher.decrypt(nonce, ciphertext, blob[:body_start] + associated_data)
        except InvalidTag:
            raise SecretUnreadable(
                f"sealed secret under key id {key_id!r} failed authentication"
            ) from None
        return plaintext.decode("utf-8")

    def key_id_of(self, blob: bytes) -> str:
        return _read_header(blob)[0]

    def is_current(self, blob: bytes) -> bool:
        """Sealed under the current key; otherwise due for `reseal` (key rotation)."""
        return self.key_id_of(blob) == self._current_key_id

    def reseal(self, blob: bytes, associated_data: bytes) -> bytes:
        """The same secret sealed under the current key (raises SecretUnreadable)."""
        return self.seal(self.open(blob, associated_data), associated_data)


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID_FORMAT.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes([_VERSION, len(encoded)]) + encoded


def _read_header(blob: bytes) -> tuple[str, int]:
    if len(blob) < 2 or blob[0] != _VERSION:
        raise SecretUnreadable("sealed secret has an unknown format")
    body_start = 2 + blob[1]
    if len(blob) < body_start:
        raise SecretUnreadable("sealed secret is truncated")
    key_id = blob[2:body_start].decode("ascii", errors="replace")
    return key_id, body_start

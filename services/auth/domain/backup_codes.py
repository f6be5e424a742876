"""Single-use backup codes, shown once to the user and stored only as keyed hashes."""

import hashlib
import hmac
import secrets
from typing import Final

# 32 symbols (5 bits each) without the look-alikes 0/o and 1/l.
BACKUP_CODE_ALPHABET: Final = "abcdefghijkmnpqrstuvwxyz23456789"
BACKUP_CODE_LENGTH: Final = 16  # 16 symbols x 5 bits = 80 bits of entropy
BACKUP_CODES_PER_ISSUE: Final = 10
_GROUP_SIZE: Final = 4


def issue_backup_codes(count: int = BACKUP_CODES_PER_ISSUE) -> list[str]:
    if count < 1:
        raise ValueError("count must be at least 1")
    codes: list[str] = []
    while len(codes) < count:
        code = _new_code()
        if code not in codes:
            codes.append(code)
    return codes


def normalize(code: str) -> str:
    # Users retype codes by hand: case, grouping dashes and spaces carry no meaning.
    return "".join(code.lower().replace("-", "").split())


def backup_code_key(totp_secret: str) -> bytes:
    """The enrollment's key for hashing its backup codes, derived from its TOTP secret.

    The secret is random per enrollment (so the key salts) and is stored only sealed under
    the server's keyring (so the key is also a server secret): a copy of the database alone
    cannot test a guess. Rotating the keyring re-seals the same secret, so the codes keep
    working; a reset shreds the secret, and with it any way to check the old codes.
    """
    return hmac.digest(totp_secret.encode("utf-8"), b"portal-mfa backup codes v1", "sha256")


def hash_backup_code(code: str, key: bytes) -> str:
    # HMAC-SHA-256, not a slow KDF: at 80 bits of entropy a guess is hopeless anyway, and the
    # hash stays deterministic, so spending a code stays one atomic conditional UPDATE.
    return hmac.new(key, normalize(code).encode("utf-8"), hashlib.sha256).hexdigest()


def _new_code() -> str:
    symbols = "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
    groups = [symbols[i : i + _GROUP_SIZE] for i in range(0, BACKUP_CODE_LENGTH, _GROUP_SIZE)]
    return "-".join(groups)

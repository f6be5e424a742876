"""Single-use backup codes, shown once to the user and stored only as hashes."""

import hashlib
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


def hash_backup_code(code: str) -> str:
    # A fast unsalted hash is enough: at 80 bits of entropy, guessing is infeasible anyway.
    return hashlib.sha256(normalize(code).encode("utf-8")).hexdigest()


def _new_code() -> str:
    symbols = "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
    groups = [symbols[i : i + _GROUP_SIZE] for i in range(0, BACKUP_CODE_LENGTH, _GROUP_SIZE)]
    return "-".join(groups)

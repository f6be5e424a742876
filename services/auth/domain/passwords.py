"""Password hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane)."""

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

MEMORY_COST_KIB: Final = 19456
TIME_COST: Final = 2
PARALLELISM: Final = 1

_hasher: Final = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM
)

# The hash of a random password that was thrown away, made with the parameters above;
# verifying against it makes an unknown email cost what a wrong password costs.
DUMMY_HASH: Final = (
    "$argon2id$v=19$m=19456,t=2,p=1$"
    "wZftWNm90yOGFt3+m+lJ7Q$KUpv0TL05dT+jT9C8pi03EgLS1lGn5WbSauw7RH87Fc"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches; False on a mismatch. A malformed hash raises InvalidHashError."""
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def verify_against_dummy(password: str) -> None:
    verify_password(DUMMY_HASH, password)

"""Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second time steps.

Codes are computed here (RFC 4226's truncation over `hmac.digest`), with the secret decoded
once per check: pyotp decoded it and built an HMAC object for each of the three steps a
check compares, ~1/10 of a challenge's own work. pyotp still draws secrets and writes the
provisioning URI; tests/unit/auth/test_totp.py holds the two to the same codes.
"""

import base64
import hmac
import re
from datetime import datetime
from typing import Final

import pyotp

TIME_STEP_SECONDS: Final = 30
OTP_DIGITS: Final = 6
SECRET_BASE32_LENGTH: Final = 32  # 32 base32 characters = 160 bits

_OTP_FORMAT: Final = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    return pyotp.random_base32(length=SECRET_BASE32_LENGTH)


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    return _totp(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def time_step(at: datetime) -> int:
    if at.tzinfo is None:
        # A naive datetime would be read as local time and shift every step.
        raise ValueError("time must be timezone-aware")
    return int(at.timestamp()) // TIME_STEP_SECONDS


def code_at(secret: str, at: datetime) -> str:
    return _code(_key(secret), time_step(at))


def matching_time_step(secret: str, otp: str, at: datetime, window: int = 1) -> int | None:
    """The time step whose code is `otp`, within `window` steps of `at`; None if none is.

    The step is returned, not a bool, so the caller can accept each step at most once.
    """
    if window < 0:
        raise ValueError("window must not be negative")
    if not _OTP_FORMAT.fullmatch(otp):
        return None
    key = _key(secret)
    current = time_step(at)
    given = otp.encode("ascii")
    matched: int | None = None
    # Nearest step first, so a rare collision resolves to the most likely intended step;
    # every candidate is compared, so the timing does not depend on which one matched.
    for step in sorted(
        range(current - window, current + window + 1), key=lambda s: abs(s - current)
    ):
        if step < 0:
            continue
        is_match = hmac.compare_digest(_code(key, step).encode("ascii"), given)
        if is_match and matched is None:
            matched = step
    return matched


def _key(secret: str) -> bytes:
    """The secret's bytes, as pyotp decodes them (padding optional, any case)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    if len(key) < 14:
        raise ValueError("Secrets must be at least 112 bits after decoding")
    return key


def _code(key: bytes, step: int) -> str:
    """RFC 4226 HOTP of the step's 8-byte big-endian counter, SHA-1, `OTP_DIGITS` digits."""
    digest = hmac.digest(key, step.to_bytes(8, "big"), "sha1")
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**OTP_DIGITS).zfill(OTP_DIGITS)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=OTP_DIGITS, interval=TIME_STEP_SECONDS)

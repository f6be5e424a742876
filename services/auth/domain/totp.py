"""Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second time steps."""

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
    return _totp(secret).generate_otp(time_step(at))


def matching_time_step(secret: str, otp: str, at: datetime, window: int = 1) -> int | None:
    """The time step whose code is `otp`, within `window` steps of `at`; None if none is.

    The step is returned, not a bool, so the caller can accept each step at most once.
    """
    if window < 0:
        raise ValueError("window must not be negative")
    if not _OTP_FORMAT.fullmatch(otp):
        return None
    totp = _totp(secret)
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
        is_match = hmac.compare_digest(totp.generate_otp(step).encode("ascii"), given)
        if is_match and matched is None:
            matched = step
    return matched


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=OTP_DIGITS, interval=TIME_STEP_SECONDS)

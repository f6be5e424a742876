import base64
import random
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from services.auth.domain.totp import (
    code_at,
    matching_time_step,
    new_secret,
    provisioning_uri,
    time_step,
)

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")
RFC_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
STEP = timedelta(seconds=30)


def at(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, tz=UTC)


@pytest.mark.parametrize(("unix_time", "expected"), RFC_SHA1_VECTORS)
def test_rfc6238_vectors_hold_for_8_digits_in_pyotp(unix_time: int, expected: str) -> None:
    assert pyotp.TOTP(RFC_SECRET, digits=8).at(unix_time) == expected


@pytest.mark.parametrize(("unix_time", "expected"), RFC_SHA1_VECTORS)
def test_code_at_gives_last_six_digits_of_rfc6238_vector(unix_time: int, expected: str) -> None:
    assert code_at(RFC_SECRET, at(unix_time)) == expected[-6:]


@pytest.mark.parametrize(("unix_time", "expected"), RFC_SHA1_VECTORS)
def test_rfc6238_vector_matches_at_its_time_step(unix_time: int, expected: str) -> None:
    assert matching_time_step(RFC_SECRET, expected[-6:], at(unix_time)) == unix_time // 30


def test_time_step_is_unix_time_over_30() -> None:
    assert time_step(at(1111111111)) == 37037037
    assert time_step(at(59)) == 1
    assert time_step(at(60)) == 2


def test_time_step_is_the_same_in_any_time_zone() -> None:
    moment = at(1234567890)
    elsewhere = moment.astimezone(datetime.fromisoformat("2000-01-01T00:00:00+05:30").tzinfo)
    assert time_step(elsewhere) == time_step(moment) == 1234567890 // 30


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        matching_time_step(SECRET, code_at(SECRET, NOW), NOW.replace(tzinfo=None))


def test_current_code_returns_current_step() -> None:
    assert matching_time_step(SECRET, code_at(SECRET, NOW), NOW) == time_step(NOW)


def test_window_accepts_previous_and_next_step() -> None:
    current = time_step(NOW)
    assert matching_time_step(SECRET, code_at(SECRET, NOW - STEP), NOW) == current - 1
    assert matching_time_step(SECRET, code_at(SECRET, NOW + STEP), NOW) == current + 1


def test_window_rejects_two_steps_away() -> None:
    nearby = {code_at(SECRET, NOW + k * STEP) for k in (-1, 0, 1)}
    for far in (NOW - 2 * STEP, NOW + 2 * STEP):
        far_code = code_at(SECRET, far)
        assert far_code not in nearby  # otherwise the rejection below would prove nothing
        assert matching_time_step(SECRET, far_code, NOW) is None


def test_window_zero_accepts_only_the_current_step() -> None:
    assert matching_time_step(SECRET, code_at(SECRET, NOW), NOW, window=0) == time_step(NOW)
    assert matching_time_step(SECRET, code_at(SECRET, NOW - STEP), NOW, window=0) is None


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError):
        matching_time_step(SECRET, code_at(SECRET, NOW), NOW, window=-1)


def test_wrong_code_is_rejected() -> None:
    code = code_at(SECRET, NOW)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert matching_time_step(SECRET, wrong, NOW) is None


def test_code_for_another_secret_is_rejected() -> None:
    other = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
    assert code_at(other, NOW) != code_at(SECRET, NOW)
    assert matching_time_step(SECRET, code_at(other, NOW), NOW) is None


def test_first_step_after_epoch_has_no_previous_step() -> None:
    assert matching_time_step(SECRET, code_at(SECRET, at(0)), at(0)) == 0


def test_non_six_digit_input_is_rejected() -> None:
    code = code_at(SECRET, NOW)
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in code)  # NFKC-equal to the code
    for candidate in (
        "",
        code[:5],
        code + "0",
        f" {code}",
        f"{code}\n",
        f"{code[:3]} {code[3:]}",
        fullwidth,
        "12a456",
        "-12345",
    ):
        assert matching_time_step(SECRET, candidate, NOW) is None, candidate


def test_new_secret_is_160_bit_base32() -> None:
    secret = new_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert len(base64.b32decode(secret)) == 20
    assert new_secret() != secret


def test_provisioning_uri_names_issuer_account_and_secret() -> None:
    uri = provisioning_uri(SECRET, "ada@example.com", "Acme Portal")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert unquote(parts.path) == "/Acme Portal:ada@example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["Acme Portal"]
    # SHA-1, 6 digits and 30 s are the otpauth defaults, so they may be left out.
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]


def test_provisioning_uri_round_trips_through_pyotp() -> None:
    uri = provisioning_uri(SECRET, "ada@example.com", "Acme: Portal")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == SECRET
    assert parsed.name == "ada@example.com"
    assert parsed.issuer == "Acme: Portal"
    assert parsed.at(NOW) == code_at(SECRET, NOW)


def test_codes_are_pyotps_codes_for_every_step_and_secret() -> None:
    # Computed here, not by pyotp: the same six digits for any secret and step, RFC's too.
    draw = random.Random(6238)
    secrets = [RFC_SECRET, SECRET, SECRET.lower(), SECRET[:24], *(new_secret() for _ in range(20))]
    for secret in secrets:
        reference = pyotp.TOTP(secret, digits=6, interval=30)
        # Up to the year 9999 (datetime's last): the counter's high bytes are used too.
        for step in [0, 1, 2**31, 8 * 10**9, *(draw.randrange(8 * 10**9) for _ in range(50))]:
            moment = datetime.fromtimestamp(step * 30 + 7, tz=UTC)
            code = reference.at(moment)
            assert code_at(secret, moment) == code, (secret, step)
            assert matching_time_step(secret, code, moment) == step

import time
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError

from services.auth.domain.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    verify_against_dummy,
    verify_password,
)


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("correct horse battery staple")


def test_hash_uses_owasp_argon2id_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = extract_parameters(stored)
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)


def test_hash_does_not_contain_the_password(stored: str) -> None:
    assert "correct horse" not in stored


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_right_password_verifies(stored: str) -> None:
    assert verify_password(stored, "correct horse battery staple") is True


def test_wrong_password_is_false_not_an_error(stored: str) -> None:
    assert verify_password(stored, "Correct horse battery staple") is False
    assert verify_password(stored, "") is False


def test_malformed_hash_raises() -> None:
    with pytest.raises(InvalidHashError):
        verify_password("not a hash", "pw")


def test_fresh_hash_needs_no_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False


def test_weaker_hash_needs_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw")
    assert needs_rehash(weak) is True
    assert verify_password(weak, "pw") is True


def test_dummy_hash_costs_the_same_as_a_real_one() -> None:
    # Same parameters means the same verify cost: an unknown email is not told apart by time.
    assert needs_rehash(DUMMY_HASH) is False
    assert extract_parameters(DUMMY_HASH) == extract_parameters(hash_password("pw"))


def test_dummy_hash_matches_no_likely_password() -> None:
    for guess in ("", "password", "anything"):
        assert verify_password(DUMMY_HASH, guess) is False


def test_verify_against_dummy_takes_as_long_as_a_real_verify(stored: str) -> None:
    def fastest(run: Callable[[], object]) -> float:
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            run()
            timings.append(time.perf_counter() - start)
        return min(timings)

    real = fastest(lambda: verify_password(stored, "wrong password"))
    dummy = fastest(lambda: verify_against_dummy("wrong password"))
    # Generous bounds: only a skipped or much cheaper verify should fail this.
    assert 0.5 * real < dummy < 2 * real

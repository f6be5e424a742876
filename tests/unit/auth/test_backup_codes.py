import hashlib
import hmac
import math
import re

import pytest

from services.auth.domain.backup_codes import (
    BACKUP_CODE_ALPHABET,
    backup_code_key,
    hash_backup_code,
    issue_backup_codes,
    normalize,
)

CODE_FORMAT = re.compile(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}")
KEY = backup_code_key("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")


def test_ten_codes_by_default() -> None:
    assert len(issue_backup_codes()) == 10


def test_count_is_honoured_and_codes_are_distinct() -> None:
    codes = issue_backup_codes(25)
    assert len(codes) == 25
    assert len(set(codes)) == 25


def test_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        issue_backup_codes(0)


def test_codes_are_grouped_symbols_of_the_alphabet() -> None:
    for code in issue_backup_codes():
        assert CODE_FORMAT.fullmatch(code), code
        assert set(normalize(code)) <= set(BACKUP_CODE_ALPHABET)


def test_codes_carry_at_least_64_bits() -> None:
    symbols = len(normalize(issue_backup_codes(1)[0]))
    assert len(set(BACKUP_CODE_ALPHABET)) == 32
    assert symbols * math.log2(len(set(BACKUP_CODE_ALPHABET))) >= 64


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("01lo") & set(BACKUP_CODE_ALPHABET)


def test_normalize_drops_case_dashes_and_spaces() -> None:
    assert normalize(" ABCD-efgh jkmn\tPQRS ") == "abcdefghjkmnpqrs"


def test_a_leaked_table_cannot_be_checked_with_a_plain_hash() -> None:
    # An attacker holding the backup_codes table but not the keyring hashes guesses itself:
    # the stored value must not be the bare SHA-256 of the code.
    code = "abcd-efgh-jkmn-pqrs"
    assert hash_backup_code(code, KEY) != hashlib.sha256(b"abcdefghjkmnpqrs").hexdigest()


def test_the_same_code_hashes_differently_for_another_enrollment() -> None:
    # Per-enrollment keys salt the hashes: one precomputed table cannot serve every user.
    other = backup_code_key("KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU")
    code = issue_backup_codes(1)[0]
    assert hash_backup_code(code, KEY) != hash_backup_code(code, other)


def test_the_hash_is_hmac_sha256_under_the_enrollment_key() -> None:
    expected = hmac.new(KEY, b"abcdefghjkmnpqrs", hashlib.sha256).hexdigest()
    assert hash_backup_code("abcd-efgh-jkmn-pqrs", KEY) == expected


def test_hash_ignores_how_the_code_was_typed() -> None:
    code = issue_backup_codes(1)[0]
    typed = code.upper().replace("-", " ")
    assert hash_backup_code(typed, KEY) == hash_backup_code(code, KEY)


def test_different_codes_hash_differently() -> None:
    first, second = issue_backup_codes(2)
    assert hash_backup_code(first, KEY) != hash_backup_code(second, KEY)

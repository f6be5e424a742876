import base64

import pytest

from services.auth.domain.secret_box import (
    SecretBox,
    SecretUnreadable,
    generate_key,
    parse_keyring,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AD = b"enrollment:7f1c"
K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def box(current: str = "k1", **keys: bytes) -> SecretBox:
    return SecretBox(keys or {"k1": K1}, current)


def test_round_trip() -> None:
    sealed = box().seal(SECRET, AD)
    assert box().open(sealed, AD) == SECRET


def test_blob_is_self_describing_and_hides_the_secret() -> None:
    sealed = box().seal(SECRET, AD)
    assert sealed[0] == 1
    assert sealed[1] == 2
    assert sealed[2:4] == b"k1"
    # header (4) + nonce (12) + ciphertext (32) + tag (16)
    assert len(sealed) == 4 + 12 + len(SECRET) + 16
    assert SECRET.encode() not in sealed


def test_each_seal_uses_a_fresh_nonce() -> None:
    first, second = box().seal(SECRET, AD), box().seal(SECRET, AD)
    assert first[4:16] != second[4:16]
    assert first != second


def test_key_id_of_reports_the_sealing_key() -> None:
    assert box().key_id_of(box().seal(SECRET, AD)) == "k1"


@pytest.mark.parametrize("position", [0, 1, 2, 3, 4, 20, -1])
def test_any_tampered_byte_is_detected(position: int) -> None:
    # k0 holds the same key as k1: flipping the id "k1" to "k0" is caught only because
    # the header is authenticated too.
    sealed = bytearray(box().seal(SECRET, AD))
    sealed[position] ^= 0x01
    with pytest.raises(SecretUnreadable):
        box(k1=K1, k0=K1, current="k1").open(bytes(sealed), AD)


def test_other_associated_data_is_refused() -> None:
    sealed = box().seal(SECRET, AD)
    with pytest.raises(SecretUnreadable):
        box().open(sealed, b"enrollment:other")


def test_wrong_key_under_the_same_id_is_refused() -> None:
    sealed = box().seal(SECRET, AD)
    with pytest.raises(SecretUnreadable) as raised:
        box(k1=K2).open(sealed, AD)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01\x05k1", b"\x01\x02k1" + bytes(20)])
def test_truncated_blob_is_refused(blob: bytes) -> None:
    with pytest.raises(SecretUnreadable):
        box().open(blob, AD)


def test_rotation_keeps_old_blobs_readable() -> None:
    old = box(k1=K1, current="k1").seal(SECRET, AD)
    rotated = box(k1=K1, k2=K2, current="k2")
    assert rotated.open(old, AD) == SECRET
    new = rotated.seal(SECRET, AD)
    assert rotated.key_id_of(new) == "k2"
    assert rotated.open(new, AD) == SECRET


def test_reseal_moves_a_secret_to_the_current_key_so_the_old_key_can_go() -> None:
    old = box(k1=K1, current="k1").seal(SECRET, AD)
    rotating = box(k1=K1, k2=K2, current="k2")
    assert not rotating.is_current(old)
    resealed = rotating.reseal(old, AD)
    assert rotating.is_current(resealed)
    assert box(k2=K2, current="k2").open(resealed, AD) == SECRET


def test_reseal_refuses_a_blob_bound_to_another_enrollment() -> None:
    old = box(k1=K1, current="k1").seal(SECRET, AD)
    with pytest.raises(SecretUnreadable):
        box(k1=K1, k2=K2, current="k2").reseal(old, b"enrollment:other")


def test_unknown_key_id_names_the_id_but_not_the_secret() -> None:
    sealed = box(k1=K1, k2=K2, current="k2").seal(SECRET, AD)
    with pytest.raises(SecretUnreadable) as raised:
        box(k1=K1).open(sealed, AD)
    message = str(raised.value)
    assert "'k2'" in message
    assert SECRET not in message
    assert K2.hex() not in message


def test_current_key_must_be_in_the_keyring() -> None:
    with pytest.raises(ValueError, match="'k9'"):
        SecretBox({"k1": K1}, "k9")


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="'k1'"):
        SecretBox({"k1": bytes(16)}, "k1")


def test_generate_key_is_32_random_bytes() -> None:
    key = generate_key()
    assert len(key) == 32
    assert generate_key() != key


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def test_parse_keyring() -> None:
    assert parse_keyring(f"k1:{b64(K1)}, k2:{b64(K2)}") == {"k1": K1, "k2": K2}


def test_parsed_keyring_builds_a_working_box() -> None:
    keyring = parse_keyring(f"k1:{b64(generate_key())}")
    sealed = SecretBox(keyring, "k1").seal(SECRET, AD)
    assert SecretBox(keyring, "k1").open(sealed, AD) == SECRET


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (f"k1:{b64(bytes(16))}", "'k1'"),
        ("k1:not*base64", "'k1'"),
        (f"k1:{b64(K1)},k1:{b64(K2)}", "'k1'"),
        (f":{b64(K1)}", "''"),
        (f"bad id:{b64(K1)}", "'bad id'"),
    ],
)
def test_bad_keyring_names_the_key_id(text: str, names: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_keyring(text)
    assert names in str(raised.value)
    assert b64(K1) not in str(raised.value)
    assert b64(K2) not in str(raised.value)


@pytest.mark.parametrize("text", ["", b64(K1), f"k1:{b64(K1)},"])
def test_entry_without_key_id_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_keyring(text)
    assert b64(K1) not in str(raised.value)

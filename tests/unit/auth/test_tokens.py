import base64
import hashlib

from shared.tokens import hash_token, new_token


def test_token_is_urlsafe_and_carries_256_bits() -> None:
    token = new_token()
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_tokens_are_unique() -> None:
    assert len({new_token() for _ in range(100)}) == 100


def test_hash_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_does_not_contain_the_token() -> None:
    token = new_token()
    assert token not in hash_token(token)
    assert hash_token(token) != hash_token(new_token())

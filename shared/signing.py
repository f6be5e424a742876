"""Signed records: every service signs what it publishes; consumers trust only its owner.

Anyone who can write to an event topic could otherwise rewrite the login decision for good
(a forged `MfaPolicyDisabled` with a high version wins forever). So each record carries an
Ed25519 signature over its exact key and value bytes, and a consumer applies a record only
if a key it trusts signed it *and* that key belongs to the service that owns the record's
aggregate type (DESIGN.md §11). Which service owns which aggregate type is fixed here, in
code: configuration can add or retire keys (rotation) but never widen what a key may sign.

Headers: `signature-kid` (the key id, ASCII) and `signature` (base64url, no padding, of the
64-byte signature). The signed message is, in bytes:

    b"portal-mfa/signed-record/v1" || i32be(len(key)) || key || i32be(len(value)) || value

(a null key is length -1, as in Kafka's own wire format), so no key/value split can be
shifted into another and no other protocol's signature can be replayed as ours.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from shared.contracts import Event, parse_event

KID_HEADER = "signature-kid"
SIGNATURE_HEADER = "signature"

# The one place that says which service may speak for which aggregate type.
AGGREGATE_TYPE_OF_SIGNER: Mapping[str, str] = {
    "preferences": "org_preferences",
    "contacts": "contact",
    "auth": "portal_account",
}

UNSIGNED = "unsigned"
UNKNOWN_SIGNER = "unknown signer"
BAD_SIGNATURE = "bad signature"
WRONG_SIGNER = "wrong signer for aggregate type"

_CONTEXT = b"portal-mfa/signed-record/v1"
# Key ids travel in a header and in settings: short, printable, no separators of either.
KID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SEED_BYTES = 32
_SIGNATURE_BYTES = 64
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")

Headers = Sequence[tuple[str, bytes]]


class RecordRefused(ValueError):
    """A record no trusted signer vouches for; `reason` is safe to log and dead-letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signed_message(key: bytes | None, value: bytes) -> bytes:
    """The exact bytes a record's signature covers (see the module docstring)."""
    key_part = b"\xff\xff\xff\xff" if key is None else len(key).to_bytes(4, "big") + key
    return _CONTEXT + key_part + len(value).to_bytes(4, "big") + value


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A verified record as it crossed the broker: enough to verify it again, later."""

    key: bytes | None
    value: bytes
    kid: str
    signature: bytes

    @classmethod
    def from_headers(cls, key: bytes | None, value: bytes, headers: Headers) -> SignedRecord:
        """Read the signature headers; `RecordRefused` if they are missing or malformed."""
        kid, encoded = _signature_headers(headers)
        if kid is None and encoded is None:
            raise RecordRefused(UNSIGNED)
        if kid is None or encoded is None:
            raise RecordRefused(BAD_SIGNATURE)
        return cls(key, value, kid.decode("ascii", errors="replace"), _decoded_signature(encoded))

    def message(self) -> bytes:
        return signed_message(self.key, self.value)


class RecordSigner:
    """One service's signing key: signs each record it publishes."""

    __slots__ = ("_private", "kid")

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        self.kid = _checked_kid(kid)
        self._private = private_key

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> RecordSigner:
        if len(seed) != _SEED_BYTES:
            raise ValueError(f"an Ed25519 private key is a {_SEED_BYTES}-byte seed")
        return cls(kid, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, kid: str) -> RecordSigner:
        return cls(kid, Ed25519PrivateKey.generate())

    def __repr__(self) -> str:  # never the key
        return f"RecordSigner(kid={self.kid!r})"

    def private_seed(self) -> bytes:
        """The raw 32-byte seed: only for handing the key to its own service's process."""
        return self._private.private_bytes_raw()

    def public_key(self) -> bytes:
        """The raw 32-byte public key, for consumers' trust maps."""
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def signature(self, key: bytes | None, value: bytes) -> bytes:
        return self._private.sign(signed_message(key, value))

    def headers(self, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        """The two headers that sign this key and value."""
        encoded = base64.urlsafe_b64encode(self.signature(key, value)).rstrip(b"=")
        return [(KID_HEADER, self.kid.encode()), (SIGNATURE_HEADER, encoded)]


@dataclass(frozen=True, slots=True)
class TrustedSigner:
    """A verification key and the one service it speaks for."""

    kid: str
    service: str
    public_key: Ed25519PublicKey

    @property
    def aggregate_type(self) -> str:
        return AGGREGATE_TYPE_OF_SIGNER[self.service]

    def vouch_for(self, aggregate_type: str, event_kind: str) -> None:
        """Refuse unless this signer owns the aggregate type the event claims and is."""
        if aggregate_type != self.aggregate_type or event_kind != self.aggregate_type:
            # The claimed type comes from the record: quote only a short prefix of it.
            raise RecordRefused(f"{WRONG_SIGNER} {aggregate_type[:40]}")


class TrustMap:
    """Which keys a consumer trusts, each for one service; several at once while keys rotate."""

    def __init__(self, signers: Iterable[TrustedSigner]) -> None:
        self._by_kid: dict[str, TrustedSigner] = {}
        # Raw key bytes for libsodium, which verifies (see `signer_of`).
        self._raw_by_kid: dict[str, bytes] = {}
        for signer in signers:
            _checked_kid(signer.kid)
            if signer.service not in AGGREGATE_TYPE_OF_SIGNER:
                raise ValueError(f"unknown signing service {signer.service[:40]!r}")
            if signer.kid in self._by_kid:
                raise ValueError(f"key id {signer.kid!r} is listed twice")
            self._by_kid[signer.kid] = signer
            self._raw_by_kid[signer.kid] = signer.public_key.public_bytes(
                Encoding.Raw, PublicFormat.Raw
            )

    @classmethod
    def of(cls, signers: Mapping[str, RecordSigner]) -> TrustMap:
        """Trust these signers' public keys, by service name (tests, the dev stack)."""
        return cls(
            TrustedSigner(s.kid, service, Ed25519PublicKey.from_public_bytes(s.public_key()))
            for service, s in signers.items()
        )

    def __len__(self) -> int:
        return len(self._by_kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def signers(self) -> list[TrustedSigner]:
        return list(self._by_kid.values())

    def signer_of(self, record: SignedRecord) -> TrustedSigner:
        """The trusted signer whose signature the record carries, or `RecordRefused`."""
        signer = self._by_kid.get(record.kid)
        if signer is None:
            raise RecordRefused(UNKNOWN_SIGNER)
        # libsodium (PyNaCl), not OpenSSL: about half the CPU per check (57 against 110 µs
        # measured here), and it lets go of the GIL meanwhile, so a projection's checks run
        # on other threads while the event loop works (docs/performance.md). It is also the
        # stricter of the two (it refuses small-order keys and non-canonical encodings), so
        # nothing OpenSSL would refuse gets through; honest signatures verify in both.
        try:
            crypto_sign_open(record.signature + record.message(), self._raw_by_kid[record.kid])
        except BadSignatureError:
            raise RecordRefused(BAD_SIGNATURE) from None
        return signer


def verified_event(trust: TrustMap, key: bytes | None, value: bytes, headers: Headers) -> Event:
    """The event in a Kafka record, only if its owner's trusted key signed exactly these bytes.

    Raises `RecordRefused` (signature) or `EventRejected` (content); both reasons are safe
    to log. The signature is checked before the value is parsed; the event keeps its
    `SignedRecord` (`EventEnvelope.signed_record`) as evidence.
    """
    record = SignedRecord.from_headers(key, value, headers)
    signer = trust.signer_of(record)
    event = parse_event(value)
    signer.vouch_for(event.aggregate_type, type(event).aggregate_kind)
    event.keep_signed_record(record)
    return event


def _checked_kid(kid: str) -> str:
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError("a key id is 1-64 characters of [A-Za-z0-9._-]")
    return kid


def _signature_headers(headers: Headers) -> tuple[bytes | None, bytes | None]:
    """The key id and signature headers, read in one pass (every record of a rebuild comes
    through here)."""
    kid = encoded = None
    kids = signatures = 0
    for name, value in headers:
        if name == KID_HEADER:
            kid, kids = value, kids + 1
        elif name == SIGNATURE_HEADER:
            encoded, signatures = value, signatures + 1
    if kids > 1 or signatures > 1:
        # Two signatures on one record: which one counts would be the attacker's choice.
        raise RecordRefused(BAD_SIGNATURE)
    return kid, encoded


def _decoded_signature(encoded: bytes) -> bytes:
    # What `base64.b64decode(..., b"-_", validate=True)` does, without building its
    # translation table again for every record.
    padded = encoded.translate(_FROM_URLSAFE) + b"=" * (-len(encoded) % 4)
    try:
        raw = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise RecordRefused(BAD_SIGNATURE) from None
    if len(raw) != _SIGNATURE_BYTES:
        raise RecordRefused(BAD_SIGNATURE)
    return raw

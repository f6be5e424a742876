"""Who an admin is: signed assertions (JWT, EdDSA) from the hosting product's identity provider.

Every admin command and admin read carries one (DESIGN.md §11). The services trust a set
of issuer public keys, picked by the token's `kid`, and one expected `iss`; the admin's
identity (`sub`) becomes the events' `actor`. An assertion made for one command carries
that command's digest (`cmd`), so anyone who reads it off the command topic can neither
re-send it with another command_id nor retarget it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.settings import Settings, SettingsError

Scope = Literal["admin", "audit"]
EVERY_ORG = "*"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["iss", "sub", "org", "scope", "exp", "iat", "jti"]
MAX_TOKEN_CHARS = 4096
VERIFIED_CACHE_SIZE = 4096  # assertions kept verified; each is short-lived anyway
RejectionKind = Literal["unauthenticated", "forbidden"]


class AssertionRejected(Exception):
    """Not authorized. `unauthenticated`: no valid assertion; `forbidden`: valid, not for this.

    The message names what is wrong and never repeats the token or its claims' values.
    """

    def __init__(self, kind: RejectionKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _unauthenticated(message: str) -> AssertionRejected:
    return AssertionRejected("unauthenticated", message)


def _forbidden(message: str) -> AssertionRejected:
    return AssertionRejected("forbidden", message)


class AdminAssertion(BaseModel):
    """The verified claims."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    iss: str
    sub: str = Field(min_length=1, max_length=200)
    org: str = Field(min_length=1, max_length=100)
    scope: Scope
    exp: int
    iat: int
    jti: str = Field(min_length=1, max_length=200)
    # SHA-256 of the canonical command; absent on a token for HTTP reads or a general
    # token, which a command then spends by its jti (docs/security.md).
    cmd: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    def covers(self, org_id: str) -> bool:
        return self.org in (EVERY_ORG, org_id)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def canonical_digest(value: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the value as canonical JSON: sorted keys, compact separators."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- keys -----------------------------------------------------------------------------------


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def private_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode()


def _raw_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a key is not base64") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 key is 32 bytes")
    return raw


def parse_trusted_keys(setting: str) -> dict[str, Ed25519PublicKey]:
    """`kid:base64(raw public key),...` -> {kid: key}. Errors never repeat a key."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        kid, sep, text = entry.partition(":")
        if not sep or not kid:
            raise ValueError("expected kid:base64key[,kid:base64key...]")
        if kid in keys:
            raise ValueError(f"key id {kid} appears twice")
        keys[kid] = Ed25519PublicKey.from_public_bytes(_raw_key(text))
    if not keys:
        raise ValueError("no issuer key configured")
    return keys


# --- minting (the dev stack and tests; production assertions come from the IdP) ------------


@dataclass(frozen=True)
class Minted:
    token: str = field(repr=False)
    expires_at: datetime


class AssertionIssuer:
    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        key_id: str,
        issuer: str,
        lifetime: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = private_key
        self.key_id = key_id
        self.issuer = issuer
        self._lifetime = lifetime
        self._clock = clock

    @classmethod
    def generate(cls, *, key_id: str, issuer: str) -> AssertionIssuer:
        return cls(Ed25519PrivateKey.generate(), key_id=key_id, issuer=issuer)

    @classmethod
    def from_private_text(cls, text: str, *, key_id: str, issuer: str) -> AssertionIssuer:
        return cls(
            Ed25519PrivateKey.from_private_bytes(_raw_key(text)), key_id=key_id, issuer=issuer
        )

    @property
    def private_text(self) -> str:
        return private_key_text(self._key)

    @property
    def trusted_key_entry(self) -> str:
        """This issuer's entry for `PORTAL_MFA_ADMIN_ISSUER_KEYS`."""
        return f"{self.key_id}:{public_key_text(self._key.public_key())}"

    def mint(self, *, sub: str, org: str, scope: Scope = "admin", cmd: str | None = None) -> Minted:
        now = self._clock()
        expires_at = now + self._lifetime
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "org": org,
            "scope": scope,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": str(uuid.uuid4()),
        }
        if cmd is not None:
            claims["cmd"] = cmd
        token = _signed_jwt(claims, self._key, self.key_id)
        return Minted(token, datetime.fromtimestamp(claims["exp"], UTC))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signed_jwt(claims: Mapping[str, Any], key: Ed25519PrivateKey, key_id: str) -> str:
    """A JWS compact token (RFC 7515/8037, EdDSA over Ed25519), as PyJWT's `encode` makes
    it: compact JSON, sorted header. Checked against PyJWT's own decoding in the tests."""
    header = {"alg": ALGORITHM, "kid": key_id, "typ": "JWT"}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":"), sort_keys=sort).encode())
        for part, sort in ((header, True), (claims, False))
    )
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"


# --- verifying ------------------------------------------------------------------------------


class AssertionVerifier:
    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        *,
        issuer: str,
        leeway: timedelta = timedelta(seconds=30),
        max_lifetime: timedelta = timedelta(minutes=15),
    ) -> None:
        if not keys or not issuer:
            raise ValueError("an assertion verifier needs issuer keys and the expected issuer")
        self._keys = dict(keys)
        self._issuer = issuer
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        # Token → its verified assertion. The same bytes verify the same way against the
        # same keys (fixed for the verifier's life), and the only check that can change
        # with time is expiry, which every hit re-checks; so a dashboard polling with one
        # assertion pays the signature check once (~0.1 ms a request otherwise).
        self._verified: OrderedDict[str, AdminAssertion] = OrderedDict()

    @classmethod
    def from_setting(cls, keys: str, *, issuer: str) -> AssertionVerifier:
        return cls(parse_trusted_keys(keys), issuer=issuer)

    def verify(self, token: str | None) -> AdminAssertion:
        """Signature by a trusted key, the expected issuer, not expired, every claim there."""
        if not token:
            raise _unauthenticated("no admin assertion")
        if len(token) > MAX_TOKEN_CHARS:
            raise _unauthenticated("the admin assertion is too long")
        known = self._verified.get(token)
        if known is not None:
            if time.time() > known.exp + self._leeway.total_seconds():
                del self._verified[token]
                raise _unauthenticated("the admin assertion has expired")
            self._verified.move_to_end(token)
            return known
        assertion = self._verify_signed(token)
        self._verified[token] = assertion
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return assertion

    def _verify_signed(self, token: str) -> AdminAssertion:
        # Imported here: only verifying needs PyJWT, and importing it would cost the admin
        # CLI (which only mints, _signed_jwt) ~40 ms of start-up for every command.
        import jwt

        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise _unauthenticated("the admin assertion is malformed") from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _unauthenticated("the admin assertion is signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the admin assertion has expired") from None
        except jwt.InvalidIssuerError:
            raise _unauthenticated("the admin assertion is from an untrusted issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthenticated(f"the admin assertion lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise _unauthenticated("the admin assertion is invalid") from None
        try:
            assertion = AdminAssertion.model_validate(claims)
        except ValidationError:
            raise _unauthenticated("the admin assertion's claims are malformed") from None
        if assertion.exp - assertion.iat > self._max_lifetime.total_seconds():
            # An assertion is short-lived by contract; a long-lived one is refused outright.
            raise _unauthenticated("the admin assertion lives too long")
        return assertion

    def for_command(self, token: str | None, *, org_id: str, digest: str) -> AdminAssertion:
        """An assertion that may send this command (of this digest) to this org."""
        assertion = self.verify(token)
        if assertion.scope != "admin":
            raise _forbidden(f"an assertion of scope {assertion.scope} cannot send commands")
        if not assertion.covers(org_id):
            raise _forbidden("the admin assertion is for another org")
        if assertion.cmd is not None and assertion.cmd != digest:
            raise _forbidden("the admin assertion was made for another command")
        return assertion

    def for_read(
        self, token: str | None, *, org_id: str | None, scopes: frozenset[Scope]
    ) -> AdminAssertion:
        """An assertion that may read this org's data (`org_id=None`: every org's)."""
        assertion = self.verify(token)
        if assertion.cmd is not None:
            # It travelled on a command topic, in view of every reader of that topic.
            raise _forbidden("an assertion made for a command cannot read")
        if assertion.scope not in scopes:
            raise _forbidden(f"an assertion of scope {assertion.scope} cannot read this")
        if org_id is None and assertion.org != EVERY_ORG:
            raise _forbidden("reading every org needs an operator assertion (org *)")
        if org_id is not None and not assertion.covers(org_id):
            raise _forbidden("the admin assertion is for another org")
        return assertion


def verifier_from(settings: Settings) -> AssertionVerifier:
    """The services' verifier; no keys or no issuer stops the service at start (fail closed)."""
    if not settings.admin_issuer_keys or not settings.admin_issuer:
        raise SettingsError(
            "invalid setting PORTAL_MFA_ADMIN_ISSUER_KEYS: admin assertions need the issuer's"
            " public keys (with PORTAL_MFA_ADMIN_ISSUER naming the expected iss)"
        )
    try:
        return AssertionVerifier.from_setting(
            settings.admin_issuer_keys, issuer=settings.admin_issuer
        )
    except ValueError as exc:
        raise SettingsError(f"invalid setting PORTAL_MFA_ADMIN_ISSUER_KEYS: {exc}") from None

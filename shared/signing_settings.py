"""`PORTAL_MFA_SIGNING_KEY` and `PORTAL_MFA_TRUSTED_SIGNERS`: their text, and what they make.

    PORTAL_MFA_SIGNING_KEY=kid:base64(32-byte Ed25519 private seed)      # this service's own
    PORTAL_MFA_TRUSTED_SIGNERS=kid=service:base64(32-byte public key),...  # whom a consumer trusts

Errors name the variable and the expected shape, never the text (it may hold a private key).
A service that publishes does not start without its key; one that consumes does not start
with nobody to trust (it would dead-letter every record).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.settings import Settings, SettingsError
from shared.signing import (
    AGGREGATE_TYPE_OF_SIGNER,
    KID_PATTERN,
    RecordSigner,
    TrustedSigner,
    TrustMap,
)

SIGNING_KEY_VAR = "PORTAL_MFA_SIGNING_KEY"
TRUSTED_SIGNERS_VAR = "PORTAL_MFA_TRUSTED_SIGNERS"


def parse_signing_key(text: str) -> RecordSigner:
    """`kid:base64(32-byte Ed25519 private seed)`."""
    kid, sep, encoded = text.strip().partition(":")
    if not sep or not KID_PATTERN.fullmatch(kid):
        raise ValueError("expected kid:base64(32-byte Ed25519 seed), kid of [A-Za-z0-9._-]")
    seed = _base64(encoded, "the private key")
    if len(seed) != 32:
        raise ValueError("the private key must be a 32-byte Ed25519 seed")
    return RecordSigner.from_seed(kid, seed)


def parse_trust_map(text: str) -> TrustMap:
    """Comma-separated `kid=service:base64(32-byte Ed25519 public key)`."""
    signers = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        kid, sep, rest = entry.partition("=")
        service, sep2, encoded = rest.partition(":")
        if not sep or not sep2 or not KID_PATTERN.fullmatch(kid):
            raise ValueError(f"entry {position}: expected kid=service:base64(public key)")
        if service not in AGGREGATE_TYPE_OF_SIGNER:
            known = ", ".join(AGGREGATE_TYPE_OF_SIGNER)
            raise ValueError(f"entry {position}: the service must be one of {known}")
        raw = _base64(encoded, f"entry {position}: the public key")
        if len(raw) != 32:
            raise ValueError(f"entry {position}: an Ed25519 public key is 32 bytes")
        signers.append(TrustedSigner(kid, service, Ed25519PublicKey.from_public_bytes(raw)))
    return TrustMap(signers)


def format_signing_key(signer: RecordSigner) -> str:
    """`PORTAL_MFA_SIGNING_KEY` text for this signer (goes only to its own process)."""
    return f"{signer.kid}:{base64.b64encode(signer.private_seed()).decode()}"


def format_trust_map(signers: Mapping[str, RecordSigner]) -> str:
    """`PORTAL_MFA_TRUSTED_SIGNERS` text for these signers, by service name."""
    return ",".join(
        f"{s.kid}={service}:{base64.b64encode(s.public_key()).decode()}"
        for service, s in signers.items()
    )


def signer_from(settings: Settings, service: str) -> RecordSigner:
    """This publishing service's signer; refuses to start without one."""
    if not settings.signing_key:
        raise SettingsError(
            f"invalid setting {SIGNING_KEY_VAR}: {service} signs every record it publishes"
            " and needs its own key (kid:base64 of a 32-byte Ed25519 seed)"
        )
    return parse_signing_key(settings.signing_key)  # validated when Settings loaded


def trust_from(settings: Settings) -> TrustMap:
    """A consumer's trust map; refuses to start when it trusts nobody."""
    trust = parse_trust_map(settings.trusted_signers)  # validated when Settings loaded
    if not len(trust):
        raise SettingsError(
            f"invalid setting {TRUSTED_SIGNERS_VAR}: a consumer needs at least one trusted"
            " signer (kid=service:base64 public key, comma-separated)"
        )
    return trust


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None

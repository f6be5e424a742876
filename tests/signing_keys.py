"""The tests' record-signing keys: one per publishing service, fixed so subprocesses agree.

Test-only keys (derived from public strings): never a deployment's.
"""

from __future__ import annotations

import hashlib
import json

from shared.admin_identity import AssertionIssuer
from shared.contracts import EventEnvelope
from shared.signing import AGGREGATE_TYPE_OF_SIGNER, RecordSigner, TrustMap
from shared.signing_settings import format_signing_key, format_trust_map

TEST_SIGNERS = {
    service: RecordSigner.from_seed(
        f"test-{service}", hashlib.sha256(f"portal-mfa test key {service}".encode()).digest()
    )
    for service in AGGREGATE_TYPE_OF_SIGNER
}
TEST_TRUST = TrustMap.of(TEST_SIGNERS)
TEST_TRUSTED_SIGNERS = format_trust_map(TEST_SIGNERS)  # PORTAL_MFA_TRUSTED_SIGNERS text

_SERVICE_OF = {kind: service for service, kind in AGGREGATE_TYPE_OF_SIGNER.items()}


def owner_of(event: EventEnvelope) -> RecordSigner:
    """The test key of the service that owns the event's aggregate type."""
    return TEST_SIGNERS[_SERVICE_OF[type(event).aggregate_kind]]


def signed_headers(event: EventEnvelope) -> list[tuple[str, bytes]]:
    """An event's headers as its owning service publishes them: type headers plus signature."""
    key, value = event.kafka_key(), event.to_json()
    return event.kafka_headers() + owner_of(event).headers(key, value)


# The tests' identity provider: services built in a test trust it for admin assertions.
TEST_ADMIN_ISSUER = AssertionIssuer.generate(key_id="test-idp", issuer="https://idp.test")


def service_keys(service: str) -> dict[str, str]:
    """The trust settings a service built in a test needs: its signing key, the trust map
    of every publisher, and the test identity provider's public key."""
    return {
        "signing_key": format_signing_key(TEST_SIGNERS[service]) if service != "audit" else "",
        "trusted_signers": TEST_TRUSTED_SIGNERS,
        "admin_issuer_keys": TEST_ADMIN_ISSUER.trusted_key_entry,
        "admin_issuer": TEST_ADMIN_ISSUER.issuer,
    }


class SignedByOwner:
    """Signs each record with the test key of its aggregate's owner: for one relay fed the
    events of several services (a test's mixed history)."""

    def headers(self, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        kind = json.loads(value)["aggregate_type"]
        return TEST_SIGNERS[_SERVICE_OF[kind]].headers(key, value)


OWNER_SIGNER = SignedByOwner()

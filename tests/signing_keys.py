"""The tests' record-signing keys: one per publishing service, fixed so subprocesses agree.

Test-only keys (derived from public strings): never a deployment's.
"""

from __future__ import annotations

import hashlib

from shared.events import EventEnvelope
from shared.signing import AGGREGATE_TYPE_OF_SIGNER, RecordSigner, TrustMap
from shared.signing_settings import format_trust_map

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

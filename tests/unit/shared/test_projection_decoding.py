"""A projection's batch is checked and parsed on several threads: nothing forged slips
through a split, and the records come back in the order the log gave them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from shared.contracts import Cause, Empty, MfaPolicyDisabled
from shared.projection import _decoded
from shared.signing import BAD_SIGNATURE, UNSIGNED, RecordSigner, TrustMap

CAUSE = Cause(actor="admin-1", at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
PREFERENCES = RecordSigner.from_seed("prefs-1", bytes(range(32)))
TRUST = TrustMap.of({"preferences": PREFERENCES})


def record(offset: int, *, signed: bool = True, forged: bool = False) -> ConsumerRecord:
    event = MfaPolicyDisabled.new(
        org_id=f"org-{offset}",
        aggregate_id=f"org-{offset}",
        aggregate_version=1,
        payload=Empty(),
        cause=CAUSE,
    )
    key, value = event.kafka_key(), event.to_json()
    headers = event.kafka_headers()
    if signed:
        headers += PREFERENCES.headers(key, value)
    if forged:
        # A valid signature of other bytes: the key's owner never signed this value.
        other = PREFERENCES.signature(key, value + b" ")
        headers[-1] = ("signature", base64.urlsafe_b64encode(other).rstrip(b"="))
    return ConsumerRecord(
        "portal.preferences.events", 0, offset, 0, 0, key, value, None, len(key), len(value),
        headers,
    )  # fmt: skip


async def test_a_large_batch_is_split_yet_decoded_in_log_order_and_fails_closed() -> None:
    forged_at, unsigned_at = {17, 1999}, {1000}
    records = [record(i, signed=i not in unsigned_at, forged=i in forged_at) for i in range(2000)]

    decoded = await _decoded(records, TRUST)

    assert [d.record.offset for d in decoded] == list(range(2000))
    refused = {d.record.offset: d.error for d in decoded if d.event is None}
    assert refused == {17: BAD_SIGNATURE, 1999: BAD_SIGNATURE, 1000: UNSIGNED}
    for d in decoded:
        if d.event is not None:
            assert d.event.aggregate_id == f"org-{d.record.offset}"


async def test_a_small_batch_is_decoded_too() -> None:
    decoded = await _decoded([record(0), record(1, forged=True)], TRUST)

    assert [d.error for d in decoded] == [None, BAD_SIGNATURE]


def test_a_record_is_measured_with_its_key_and_headers() -> None:
    from aiokafka import ConsumerRecord

    from shared.projection import _record_bytes

    headers = (("a", b"12"), ("bc", b""), ("d", None))
    record = ConsumerRecord("t", 0, 0, 0, 0, b"key", b"value", None, 3, 5, headers)
    assert _record_bytes(record) == 5 + 3 + (1 + 2) + (2 + 0) + (1 + 0)  # type: ignore[arg-type]

"""Each org's stored events, chained by hash in the order the audit log stored them.

A row's `hash` is SHA-256(`prev_hash` || the signed bytes of its record), and `prev_hash`
is the hash of the org's row before it (32 zero bytes for the first). Signatures prove each
event's content; the chain shows a row deleted, reordered or slipped in between.
"""

from __future__ import annotations

import hashlib

from shared.signing import SignedRecord

GENESIS = bytes(32)


def link(prev_hash: bytes, record: SignedRecord) -> bytes:
    return hashlib.sha256(prev_hash + record.message()).digest()

"""The audit log's rules: each org's stored events chained by hash, and what `verify` finds.

A row's `hash` is SHA-256(`prev_hash` || the signed bytes of its record), and `prev_hash`
is the hash of the org's row before it (32 zero bytes for the first). Signatures prove each
event's content; the chain shows a row deleted, reordered or slipped in between.

Verification reads stored rows (mappings of the `audit_events` columns) and says:
- forged: a row whose signed record does not verify against the trust map, whose signer
  may not speak for its aggregate type, or whose stored envelope or columns differ from
  the signed bytes (what `tail` and `explain` read must be what was signed);
- gaps: aggregate versions missing below the highest stored one, per aggregate;
- chain_ok: every org's rows link by hash from the first to the org's stored head.

The trust map must still hold retired keys' public keys, or their events show as forged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.contracts import EventRejected, parse_event
from shared.signing import RecordRefused, SignedRecord, TrustMap

GENESIS = bytes(32)
MAX_LISTED = 100  # findings listed per kind; the counts are always whole


class Row(Protocol):
    """A stored row of `audit_events` (or `audit_chain_heads`), read by column name."""

    def __getitem__(self, column: str) -> Any: ...


_COLUMNS = (
    "event_id",
    "event_type",
    "org_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "occurred_at",
)


def link(prev_hash: bytes, record: SignedRecord) -> bytes:
    return hashlib.sha256(prev_hash + record.message()).digest()


@dataclass
class Verification:
    events_checked: int = 0
    forged: list[dict[str, Any]] = field(default_factory=list)
    chain_breaks: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[tuple[str, str], set[int]] = field(default_factory=dict)

    def gaps(self) -> list[dict[str, Any]]:
        found = []
        for (aggregate_type, aggregate_id), seen in sorted(self.versions.items()):
            missing = sorted(set(range(1, max(seen) + 1)) - seen)
            if missing:
                found.append(
                    {
                        "aggregate_type": aggregate_type,
                        "aggregate_id": aggregate_id,
                        "missing_versions": missing,
                    }
                )
        return found

    def report(self) -> dict[str, Any]:
        gaps = self.gaps()
        return {
            "events_checked": self.events_checked,
            "forged": len(self.forged),
            "gaps": sum(len(g["missing_versions"]) for g in gaps),
            "chain_ok": not self.chain_breaks,
            "findings": {
                "forged": self.forged[:MAX_LISTED],
                "gaps": gaps[:MAX_LISTED],
                "chain_breaks": self.chain_breaks[:MAX_LISTED],
            },
        }


@dataclass
class OrgChain:
    """One org's rows, walked in chain order: the link each should be, and the hash so far."""

    org_id: str
    expected_seq: int = 1
    running: bytes = GENESIS

    def follow(self, row: Row, result: Verification) -> None:
        result.events_checked += 1
        key = (row["aggregate_type"], row["aggregate_id"])
        result.versions.setdefault(key, set()).add(row["aggregate_version"])
        problem = chain_problem(row, self.expected_seq, self.running)
        if problem:
            result.chain_breaks.append(
                {"org_id": self.org_id, "position": row["position"], "problem": problem}
            )
        self.expected_seq = (row["chain_seq"] or self.expected_seq) + 1
        self.running = row["hash"] or self.running

    def end(self, head: Row | None, result: Verification) -> None:
        """Compare the walk with the org's stored chain head (None: no head row)."""
        if head is None and self.expected_seq == 1:
            return  # an org the log has never seen: nothing to check
        if head is None or head["length"] != self.expected_seq - 1 or head["head"] != self.running:
            result.chain_breaks.append(
                {"org_id": self.org_id, "position": None, "problem": "chain head does not match"}
            )


def chain_problem(row: Row, expected_seq: int, running: bytes) -> str | None:
    if row["chain_seq"] != expected_seq:
        return f"expected link {expected_seq}, found {row['chain_seq']}"
    if row["prev_hash"] != running:
        return "does not follow the row before it"
    record = stored_record(row)
    if record is None or row["hash"] != link(running, record):
        return "hash does not match the signed record"
    return None


def forged(trust: TrustMap, rows: Sequence[Row]) -> list[dict[str, Any]]:
    found = []
    for row in rows:
        reason = _forgery(trust, row)
        if reason:
            found.append(
                {"position": row["position"], "event_id": str(row["event_id"]), "reason": reason}
            )
    return found


def _forgery(trust: TrustMap, row: Row) -> str | None:
    record = stored_record(row)
    if record is None:
        return "unsigned"
    try:
        signer = trust.signer_of(record)
        event = parse_event(record.value)
        signer.vouch_for(event.aggregate_type, type(event).aggregate_kind)
    except RecordRefused as exc:
        return exc.reason
    except EventRejected as exc:
        return str(exc)
    if event.model_dump(mode="json") != row["envelope"]:
        return "stored envelope differs from the signed record"
    if any(getattr(event, c) != row[c] for c in _COLUMNS):
        return "stored columns differ from the signed record"
    return None


def stored_record(row: Row) -> SignedRecord | None:
    if row["record_value"] is None or row["signature_kid"] is None or row["signature"] is None:
        return None
    return SignedRecord(
        row["record_key"], row["record_value"], row["signature_kid"], row["signature"]
    )

"""`audit verify`: is the stored log what the services signed, whole, and in its chain?

- forged: a row whose signed record does not verify against the trust map, whose signer
  may not speak for its aggregate type, or whose stored envelope or columns differ from
  the signed bytes (what `tail` and `explain` read must be what was signed);
- gaps: aggregate versions missing below the highest stored one, per aggregate;
- chain_ok: every org's rows link by hash from the first to the org's stored head.

The trust map must still hold retired keys' public keys, or their events show as forged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.audit.chain import GENESIS, link
from shared.contracts import EventRejected, parse_event
from shared.signing import RecordRefused, SignedRecord, TrustMap

PAGE = 5000
MAX_LISTED = 100  # findings listed per kind; the counts are always whole

_COLUMNS = (
    "event_id",
    "event_type",
    "org_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "occurred_at",
)


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


async def verify_log(
    conn: asyncpg.Connection, trust: TrustMap, org_id: str | None = None
) -> dict[str, Any]:
    """Check one org's stored events, or every org's, in one snapshot of the log."""
    result = Verification()
    # One snapshot: events stored meanwhile would otherwise move a head past its rows.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        orgs = [org_id] if org_id is not None else await _all_orgs(conn)
        for org in orgs:
            await _verify_org(conn, trust, org, result)
    return result.report()


async def _all_orgs(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT org_id FROM audit_chain_heads UNION SELECT org_id FROM audit_events"
    )
    return sorted(r["org_id"] for r in rows)


async def _verify_org(
    conn: asyncpg.Connection, trust: TrustMap, org_id: str, result: Verification
) -> None:
    expected_seq, running = 1, GENESIS
    cursor = await conn.cursor(
        "SELECT * FROM audit_events WHERE org_id = $1 ORDER BY chain_seq NULLS LAST, position",
        org_id,
    )
    while page := await cursor.fetch(PAGE):
        # Signature checks are CPU work that releases the GIL: off the event loop.
        result.forged += await asyncio.to_thread(_forged, trust, page)
        for row in page:
            result.events_checked += 1
            key = (row["aggregate_type"], row["aggregate_id"])
            result.versions.setdefault(key, set()).add(row["aggregate_version"])
            problem = _chain_problem(row, expected_seq, running)
            if problem:
                result.chain_breaks.append(
                    {"org_id": org_id, "position": row["position"], "problem": problem}
                )
            expected_seq = (row["chain_seq"] or expected_seq) + 1
            running = row["hash"] or running
    head = await conn.fetchrow(
        "SELECT length, head FROM audit_chain_heads WHERE org_id = $1", org_id
    )
    if head is None and expected_seq == 1:
        return  # an org the log has never seen: nothing to check
    if head is None or head["length"] != expected_seq - 1 or head["head"] != running:
        result.chain_breaks.append(
            {"org_id": org_id, "position": None, "problem": "chain head does not match"}
        )


def _chain_problem(row: asyncpg.Record, expected_seq: int, running: bytes) -> str | None:
    if row["chain_seq"] != expected_seq:
        return f"expected link {expected_seq}, found {row['chain_seq']}"
    if row["prev_hash"] != running:
        return "does not follow the row before it"
    record = _record(row)
    if record is None or row["hash"] != link(running, record):
        return "hash does not match the signed record"
    return None


def _forged(trust: TrustMap, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    found = []
    for row in rows:
        reason = _forgery(trust, row)
        if reason:
            found.append(
                {"position": row["position"], "event_id": str(row["event_id"]), "reason": reason}
            )
    return found


def _forgery(trust: TrustMap, row: asyncpg.Record) -> str | None:
    record = _record(row)
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


def _record(row: asyncpg.Record) -> SignedRecord | None:
    if row["record_value"] is None or row["signature_kid"] is None or row["signature"] is None:
        return None
    return SignedRecord(
        row["record_key"], row["record_value"], row["signature_kid"], row["signature"]
    )

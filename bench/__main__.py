"""Every DESIGN.md §9 row in one run, each beside its bare baseline.

    .venv/bin/python -m bench all [--quick] [--json FILE] [--check]
    .venv/bin/python -m bench lookup [--quick] [--json FILE] [--check]
    .venv/bin/python -m bench challenge [--quick] [--json FILE] [--check]
    .venv/bin/python -m bench password [--quick] [--json FILE] [--check]

Runs `bench.portal_http` (lookup, reset → lookup, password step, MFA challenge, auth RSS
with 1,000,000 contacts projected: one dev stack) and then `bench.projection_rebuild`
(its own broker and PostgreSQL), prints one table and writes one JSON document: each row
with its figure, baseline, ratio, target, verdict, load average and git revision.
`--check` exits with status 1 if any target is missed. `lookup` takes only the
login-requirement lookup and reset → lookup rows (one dev stack, no rebuild);
`challenge` the MFA challenge row alone (one dev stack and the bare ASGI endpoint);
`password` the password step alone (one dev stack).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bench import machine, portal_http, projection_rebuild
from bench.rows import Row, table, write_json

QUICK_EVENTS = 100_000
FULL_EVENTS = 1_000_000


async def run_all(quick: bool, what: str = "all") -> list[Row]:
    # The code measured is what was checked out when the run started (the stack and the
    # rebuild import it then), whatever is committed while it runs.
    revision = machine.revision()
    plan = portal_http.QUICK if quick else portal_http.FULL
    if what in ("lookup", "challenge", "password"):
        rows = await portal_http.measure(
            plan,
            extended=False,
            lookup_only=what == "lookup",
            challenge_only=what == "challenge",
            password_only=what == "password",
        )
        for row in rows:
            row.revision = revision
        return rows
    rows = await portal_http.measure(plan)
    rebuild_args = projection_rebuild._parse_args(
        ["--events", str(QUICK_EVENTS if quick else FULL_EVENTS)]
    )
    rows.append(await projection_rebuild.measure(rebuild_args))
    for row in rows:
        row.revision = revision
    return rows


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "what",
        choices=["all", "lookup", "challenge", "password"],
        help="which rows: all of them, the lookup and reset → lookup rows, the MFA challenge,"
        " or the password step",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short runs (rebuild over {QUICK_EVENTS:,} events) instead of the full ones",
    )
    parser.add_argument("--json", metavar="FILE", help="write the rows as one JSON document")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if any target is missed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    rows = asyncio.run(run_all(args.quick, args.what))
    mode = "quick" if args.quick else "full"
    print()
    print(f"DESIGN.md §9, {mode} run:")
    print(table(rows))
    if args.json:
        write_json(args.json, rows, mode=mode)
        print(f"rows written to {args.json}")
    return 1 if args.check and not all(r.met for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

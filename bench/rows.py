"""One §9 row as every benchmark reports it: the figure beside its bare baseline.

`python -m bench all` collects these into one JSON document and one table; the ratio is
the figure to compare across runs, because the machine is shared and the baseline moves
with it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import machine


@dataclass
class Row:
    """One row of DESIGN.md §9.

    `figure` / `baseline` are in `unit`; `ratio` is figure / baseline where that means
    something (None otherwise); `target` says in words what `met` was judged against.
    """

    row: str
    figure: float
    unit: str
    target: str
    met: bool
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    load_average: tuple[float, float, float] = field(default_factory=os.getloadavg)
    revision: str = field(default_factory=machine.revision)
    measured_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )


def ratio(figure: float, baseline: float) -> float | None:
    return figure / baseline if baseline and not math.isnan(baseline) else None


def _clean(value: Any) -> Any:
    """NaN is not JSON: unmeasured numbers are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def document(rows: Sequence[Row], *, mode: str) -> dict[str, Any]:
    return {
        "revision": rows[0].revision if rows else machine.revision(),
        "cores": os.cpu_count(),
        "mode": mode,
        "load_average_at_end": list(os.getloadavg()),
        "all_met": all(r.met for r in rows),
        "rows": [_clean(asdict(r)) for r in rows],
    }


def write_json(path: str, rows: Sequence[Row], *, mode: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document(rows, mode=mode), out, indent=2)
        out.write("\n")


def _num(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def table(rows: Sequence[Row]) -> str:
    """A Markdown table, the same one docs/performance.md keeps."""
    lines = [
        "| row | figure | baseline | ratio | target | met | load (1 min) | revision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = f"{_num(r.baseline, r.unit)} ({r.baseline_name})" if r.baseline_name else "—"
        share = f"{r.ratio:.1%}" if r.ratio is not None else "—"
        lines.append(
            f"| {r.row} | {_num(r.figure, r.unit)} | {base} | {share} | {r.target} | "
            f"{'met' if r.met else 'MISSED'} | {r.load_average[0]:.2f} | {r.revision} |"
        )
    return "\n".join(lines)

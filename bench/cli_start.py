"""The admin CLI's wall time, as an admin types it: `portal-mfa --help`, and an admin
command against a running dev stack, beside a bare `python -c pass` (the interpreter's
own start-up, the floor nothing here can go under), measured in turn in the same run.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from bench.rows import Row, ratio

TARGET_HELP_MS = 250.0
TARGET_COMMAND_MS = 500.0


def _portal_mfa() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "portal-mfa")
    return [beside] if os.path.exists(beside) else [shutil.which("portal-mfa") or "portal-mfa"]


CPU_MS: dict[str, list[float]] = {}  # argv[-1] → the children's CPU per run


def _wall_ms(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall time of one run; its CPU (user + system, what a busy machine does not
    inflate) is noted in CPU_MS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=60)
    elapsed = (time.perf_counter() - started) * 1e3
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-300:]}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3
    CPU_MS.setdefault(" ".join(argv), []).append(cpu)
    return elapsed


def measure(
    runs: int, env: Mapping[str, str], command: Sequence[str], command_name: str
) -> list[Row]:
    """Median wall time of `runs` runs each, interleaved with the bare interpreter."""
    bare_argv = [sys.executable, "-c", "pass"]
    cases = {
        "--help": [*_portal_mfa(), "--help"],
        command_name: [*_portal_mfa(), *command],
    }
    times: dict[str, list[float]] = {"bare": [], **{k: [] for k in cases}}
    for argv in cases.values():  # warm the page cache, not counted
        _wall_ms(argv, env)
    for _ in range(runs):
        times["bare"].append(_wall_ms(bare_argv, env))
        for name, argv in cases.items():
            times[name].append(_wall_ms(argv, env))
    bare = statistics.median(times["bare"])
    rows = []
    for name, target in (("--help", TARGET_HELP_MS), (command_name, TARGET_COMMAND_MS)):
        figure = statistics.median(times[name])
        cpu = statistics.median(CPU_MS[" ".join(cases[name])][1:])  # [0]: the warm-up
        rows.append(
            Row(
                f"portal-mfa {name} wall time",
                figure,
                "ms",
                f"< {target:g} ms",
                figure < target,
                bare,
                "python -c pass",
                ratio(figure, bare),
                {
                    "runs": runs,
                    "min_ms": min(times[name]),
                    "max_ms": max(times[name]),
                    "cpu_ms_median": cpu,
                    "bare_cpu_ms_median": statistics.median(CPU_MS[" ".join(bare_argv)]),
                },
            )
        )
        print(
            f"portal-mfa {name}: median {figure:.0f} ms (min {min(times[name]):.0f}, max "
            f"{max(times[name]):.0f}; CPU {cpu:.0f} ms); bare interpreter {bare:.0f} ms; "
            f"target < {target:g} ms: "
            f"{'met' if figure < target else 'MISSED'}",
            flush=True,
        )
    return rows

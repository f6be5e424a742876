"""The admin CLI's wall time, as an admin types it: `portal-mfa --help`, and an admin
command against a running dev stack, beside a bare `python -c pass` (the interpreter's
own start-up, the floor nothing here can go under), measured in turn in the same run.

    .venv/bin/python -m bench.cli_start [--runs N] [--json FILE] [--check]

Alone, it starts its own dev stack (free ports) unless `PORTAL_MFA_KAFKA_BOOTSTRAP`
names a running one, whose services' ports then come from `PORTAL_MFA_*_PORT` as the
CLI reads them. `python -m bench all` measures these rows on its shared stack.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence

from bench.rows import Row, ratio, table, write_json

TARGET_HELP_MS = 250.0
TARGET_COMMAND_MS = 500.0


# The services the admin command reads from: auth above all, since a change returns only
# once auth's login decision reflects it (read-your-writes).
_SERVICE_PORTS = {
    "auth": "PORTAL_MFA_AUTH_PORT",
    "preferences": "PORTAL_MFA_PREFERENCES_PORT",
    "contacts": "PORTAL_MFA_CONTACTS_PORT",
    "audit": "PORTAL_MFA_AUDIT_PORT",
}


def client_env(kafka: str, ports: Mapping[str, int]) -> dict[str, str]:
    """The CLI's environment for a stack at these addresses, with no other PORTAL_MFA_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MFA_")}
    env["PORTAL_MFA_KAFKA_BOOTSTRAP"] = kafka
    for service, variable in _SERVICE_PORTS.items():
        if service in ports:
            env[variable] = str(ports[service])
    return env


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


def admin_command(org: str) -> list[str]:
    return ["admin", "--org", org, "mfa", "enable", "--json"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="counted runs of each (15)")
    parser.add_argument("--json", metavar="FILE", help="write the rows as one JSON document")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    org = f"bench-cli-{uuid.uuid4().hex[:6]}"
    stack = None
    if os.environ.get("PORTAL_MFA_KAFKA_BOOTSTRAP"):
        env = dict(os.environ)  # a running stack, as the CLI would find it from here
    else:
        from portal_mfa.dev_process import DevProcess

        stack = DevProcess.start({"PORTAL_MFA_DEV_SEED": "0"}, inherit_settings=False)
        env = client_env(stack.kafka, stack.ports)
    try:
        rows = measure(args.runs, env, admin_command(org), "admin mfa enable")
    finally:
        if stack is not None:
            stack.stop()
    print(table(rows))
    if args.json:
        write_json(args.json, rows, mode=f"cli, {args.runs} runs")
    return 1 if args.check and not all(r.met for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""How long a service of `portal-mfa dev` is gone after it is killed (docs/reliability.md).

    .venv/bin/python -m bench.restart_time [auth|preferences|contacts|audit] [--rounds N]

Starts its own dev stack, SIGKILLs the service's process, and times until the supervisor's
replacement answers `/readyz` with 200; prints one line per round.
"""

from __future__ import annotations

import argparse
import signal
import time

import httpx
import psutil

from portal_mfa.dev_process import DevProcess
from portal_mfa.serve import SERVICES


def _service_process(stack: DevProcess, service: str) -> psutil.Process:
    for process in stack.descendants():
        if process.cmdline()[-2:] == ["serve", service]:
            return process
    raise SystemExit(f"no {service} process under the dev stack")


def _ready(stack: DevProcess, service: str) -> bool:
    try:
        return httpx.get(stack.url(service, "/readyz"), timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=SERVICES, nargs="?", default="auth")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = DevProcess.start({"PORTAL_MFA_DEV_SEED": "0"})
    try:
        for _ in range(args.rounds):
            victim = _service_process(stack, args.service)
            killed_at = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            while not _ready(stack, args.service):
                time.sleep(0.1)
            print(f"{args.service} ready again after {time.monotonic() - killed_at:.1f} s")
            time.sleep(3)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

"""Outages the fault tests cause on purpose, and how they wait for the system to heal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from portal_mfa.infra import EmbeddedBroker


@contextlib.asynccontextmanager
async def broker_paused(broker: EmbeddedBroker) -> AsyncIterator[None]:
    """The broker frozen (SIGSTOP): connections stay open and nothing answers, as in a
    long GC pause or a hung VM. Always thawed on the way out."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
) -> float:
    """Poll until `condition` holds; return how long that took. Fail after `within` s."""
    started = time.monotonic()
    while True:
        outcome = condition()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


def figure(name: str, value: object) -> None:
    """A measured figure, printed for docs/reliability.md (visible with `-s`)."""
    print(f"FIGURE {name}: {value}", flush=True)

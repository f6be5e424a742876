"""Capped exponential back-off with jitter: how every retry here waits.

Jitter spreads replicas that failed together (one database restart hits them all), and
the cap keeps recovery prompt once the outage ends.
"""

from __future__ import annotations

import asyncio
import random

_MAX_DOUBLINGS = 32  # 2**32 times any first delay is past any cap


class Backoff:
    def __init__(self, first_s: float = 0.2, cap_s: float = 10.0) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError("expected 0 < first_s <= cap_s")
        self.first_s = first_s
        self.cap_s = cap_s
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt: between half and all of the current step."""
        step = min(self.cap_s, self.first_s * 2 ** min(self.failures, _MAX_DOUBLINGS))
        self.failures += 1
        return random.uniform(step / 2, step)

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.failures = 0

"""Keep the cyclic garbage collector out of a serving process's tail latency.

CPython's cyclic collector stops the event loop while it runs. A service's heap is mostly
objects made at start-up and kept for its whole life (modules, the FastAPI app and its
pydantic models, the Kafka and database clients): every full (generation-2) collection
walks all ~90,000 of them again (freeing 0-75 objects each time in auth) and took
42-220 ms of wall time in auth on a shared machine (40-62 ms of CPU), stalling every request
in flight for that long: one such collection inside `bench lookup`'s 3 s window took its
p99 to 181 ms. And the default young threshold (700 container objects) runs a young
collection 25-57 times a second under load.

So a serving process, once started (its lifespan's start-up done: schemas applied, the
projection consumer and relay running), collects once and freezes what survived
(`gc.freeze()`: moved to a permanent generation no collection walks), and collects its
young generation less often. Reference counting still frees almost everything at once;
the collector is only for cycles, which are still collected, so memory stays bounded
(measured: docs/performance.md, "Tail latency and the garbage collector").
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any, Final

from fastapi import FastAPI

# Container objects allocated (net of those freed) before a young collection: ~14x the
# default 700, so under 64 clients a young collection comes every few seconds, not ~25
# times a second; each walks at most this many objects, ~0.3-3 ms (50,000 took 5-7 ms).
YOUNG_THRESHOLD: Final = 10_000
# Young collections before a middle one, middle ones before a full one (CPython's
# defaults; a full one also waits until a quarter of the unfrozen heap is new).
MIDDLE_THRESHOLD: Final = 10
OLD_THRESHOLD: Final = 10


def collect_less_often() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def freeze_start_up_heap() -> None:
    """Free start-up's garbage, then keep every survivor out of later collections."""
    gc.collect()
    gc.freeze()


def freeze_after_start_up(app: FastAPI) -> None:
    """Run `freeze_start_up_heap` once the app's lifespan has started (before it serves)."""
    started = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with started(app_) as state:
            freeze_start_up_heap()
            yield state

    app.router.lifespan_context = lifespan

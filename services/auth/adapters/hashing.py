"""argon2id off the event loop, on a thread pool of its own sized to the cores.

Each hash is CPU and 19 MiB of memory for ~30 ms. On asyncio's default pool
(`min(32, cpus + 4)` threads) more hashes run at once than there are cores: each one
takes longer, and the projection consumer's record decoding (which also runs on the
default pool) waits behind them. With one thread per core, extra logins queue here.

It also bounds auth's memory: glibc raises its mmap threshold after the first large
free, so each hashing thread keeps its 19 MiB buffer in its malloc arena for good —
6 threads kept ~114 MB, which alone put auth over the 200 MB of DESIGN.md §9. (Forcing
the buffers back with `mallopt(M_MMAP_THRESHOLD)` was measured too: it costs ~8 ms of
kernel time per hash, page faults on fresh memory, so the pool's bound is the cure.)
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from services.auth.domain.passwords import hash_password, verify_password


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


WORKERS: Final = _cores()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="argon2")
    return _pool


async def hashed(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_password, password)


async def verified(password_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), verify_password, password_hash, password
    )

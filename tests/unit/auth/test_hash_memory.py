"""A burst of logins leaves auth at most one argon2id buffer (19 MiB) per core larger:
the hashing pool's size bounds what glibc keeps in its per-thread arenas (DESIGN.md §9's
memory row), where asyncio's default pool kept one per thread of cores + 4.

Run in fresh interpreters, so nothing else this test process did counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.auth.adapters import hashing

_BURST = """
import asyncio, sys
from concurrent.futures import ThreadPoolExecutor
import psutil
from services.auth.adapters import hashing
from services.auth.domain.passwords import hash_password, verify_password
stored = hash_password("a password")
process = psutil.Process()
start = process.memory_info().rss

async def burst() -> None:
    if sys.argv[1] == "default-pool":  # what auth did before: asyncio.to_thread
        calls = [asyncio.to_thread(verify_password, stored, "a password") for _ in range(18)]
    else:
        calls = [hashing.verified(stored, "a password") for _ in range(18)]
    assert all(await asyncio.gather(*calls))

asyncio.run(burst())
print((process.memory_info().rss - start) >> 20)
"""


def _growth_mb(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _BURST, mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_burst_of_logins_keeps_at_most_one_hash_buffer_per_core() -> None:
    bound = 20 * hashing.WORKERS  # 19 MiB each, plus a little
    assert _growth_mb("hashing-pool") <= bound
    # The same burst on asyncio's default pool keeps more (so this test can fail).
    assert _growth_mb("default-pool") > bound

"""After a burst of logins, auth gives argon2id's buffers back: its RSS stays near where
it started instead of keeping 19 MiB per hashing thread (DESIGN.md §9's memory row).

Run in fresh interpreters: the allocator setting is process-wide and one-way.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_BURST = """
import sys
from concurrent.futures import ThreadPoolExecutor
import psutil
from services.auth.domain.passwords import hash_password, verify_password
if sys.argv[1] == "fixed":
    from services.auth.memory import return_large_buffers
    assert return_large_buffers()
stored = hash_password("a password")
process = psutil.Process()
start = process.memory_info().rss
with ThreadPoolExecutor(6) as pool:  # asyncio's default pool size on 2 cores
    assert all(pool.map(lambda _: verify_password(stored, "a password"), range(18)))
print((process.memory_info().rss - start) >> 20)
"""


def _growth_mb(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _BURST, mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_hash_buffers_are_returned_after_a_burst_of_logins() -> None:
    # Without the setting the same burst keeps several 19 MiB buffers (the test can fail).
    assert _growth_mb("default") >= 3 * 19
    assert _growth_mb("fixed") < 19

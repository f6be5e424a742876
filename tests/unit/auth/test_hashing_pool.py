"""Password hashes run on a pool of their own, one thread per core: never more hashes at
once than cores (each would slow the others and crowd the caches), and never on asyncio's
default pool, where the projection consumer decodes its records."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from services.auth.adapters import hashing
from services.auth.domain.passwords import hash_password


class RefusingExecutor(ThreadPoolExecutor):
    """Stands in for asyncio's default pool: anything sent there fails the test."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError(f"{fn!r} ran on the default executor")


def test_the_pool_has_one_thread_per_core() -> None:
    assert len(os.sched_getaffinity(0)) == hashing.WORKERS


def test_no_more_hashes_run_at_once_than_there_are_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def slow_verify(password_hash: str, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return password == "right"

    monkeypatch.setattr(hashing, "verify_password", slow_verify)

    async def burst() -> list[bool]:
        asyncio.get_running_loop().set_default_executor(RefusingExecutor())
        return await asyncio.gather(
            *(
                hashing.verified("h", "right" if i % 2 else "wrong")
                for i in range(4 * hashing.WORKERS)
            )
        )

    answers = asyncio.run(burst())
    assert answers == [bool(i % 2) for i in range(4 * hashing.WORKERS)]
    assert most == hashing.WORKERS


def test_a_real_hash_made_on_the_pool_verifies() -> None:
    async def both() -> tuple[bool, bool]:
        asyncio.get_running_loop().set_default_executor(RefusingExecutor())
        stored = await hashing.hashed("correct horse")
        return await hashing.verified(stored, "correct horse"), await hashing.verified(
            stored, "wrong horse"
        )

    assert asyncio.run(both()) == (True, False)
    assert hash_password("x").startswith("$argon2id$")

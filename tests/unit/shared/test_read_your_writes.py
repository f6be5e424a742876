"""Write positions as tokens, and the bounded wait a read makes for one."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from shared.read_your_writes import (
    POSITION_PATTERN,
    NotCaughtUp,
    WritePosition,
    wait_until_applied,
)


def test_a_position_reads_back_from_its_token_even_with_colons_in_the_id() -> None:
    position = WritePosition("contact", "a:b@c", 12)
    assert position.token() == "contact:12:a:b@c"
    assert re.fullmatch(POSITION_PATTERN, position.token())
    assert WritePosition.parse(position.token()) == position


@pytest.mark.parametrize("token", ["contact", "contact:x:c-1", ":1:c-1", "contact:1:"])
def test_a_token_that_names_no_position_is_refused(token: str) -> None:
    with pytest.raises(ValueError):
        WritePosition.parse(token)


class FakePool:
    """Only what the wait uses: a connection to hand to `applied_version`."""

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


class Batches:
    """A projection that applies one version per batch, `per_s` batches a second."""

    def __init__(self, per_s: float) -> None:
        self.version = 0
        self._interval = 1 / per_s
        self.waits = 0

    async def batch_applied(self, timeout_s: float) -> None:
        self.waits += 1
        await asyncio.sleep(min(timeout_s, self._interval))
        if timeout_s >= self._interval:
            self.version += 1

    async def applied(self, conn: Any, position: WritePosition) -> int | None:
        return self.version or None


def test_the_wait_returns_as_soon_as_the_version_is_applied() -> None:
    batches = Batches(per_s=100)
    position = WritePosition("contact", "c-1", 3)
    asyncio.run(wait_until_applied(FakePool(), batches.applied, position, batches, within_s=5))  # type: ignore[arg-type]
    assert batches.version == 3
    assert batches.waits == 3


def test_the_wait_gives_up_at_its_bound() -> None:
    batches = Batches(per_s=100)
    position = WritePosition("contact", "c-1", 10_000)
    started = time.monotonic()
    with pytest.raises(NotCaughtUp):
        asyncio.run(
            wait_until_applied(FakePool(), batches.applied, position, batches, within_s=0.3)
        )  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - started < 1.0


def test_a_position_at_version_0_is_applied_before_anything_is() -> None:
    # A no-op change on an aggregate nothing was written to yet (mfa disable on a new org).
    batches = Batches(per_s=1)
    position = WritePosition("org_preferences", "org-1", 0)
    asyncio.run(wait_until_applied(FakePool(), batches.applied, position, batches, within_s=5))  # type: ignore[arg-type]
    assert batches.waits == 0

"""The coalescer under passed challenges' group commit (adapters/challenge_batches.py):
one sender at a time, no waiting at low load, a group is what queued while the previous
one was sent, and a failed send fails every item it carried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.auth.adapters.challenge_batches import Coalescer


async def _turns(n: int = 3) -> None:
    """A few turns of the event loop: the submitting task's, then the sender's."""
    for _ in range(n):
        await asyncio.sleep(0)


class Sender:
    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return [item * 10 for item in items]


async def test_the_first_item_goes_at_once_and_the_rest_in_one_group() -> None:
    sender = Sender()
    coalescer = Coalescer(sender, limit=32)
    first = asyncio.ensure_future(coalescer.submit(1))
    await _turns()
    assert sender.groups == [[1]]  # nothing waited for company
    rest = [asyncio.ensure_future(coalescer.submit(n)) for n in range(2, 7)]
    await _turns()
    assert sender.groups == [[1]]  # one sender at a time
    sender.release.set()
    assert await first == 10
    assert [await r for r in rest] == [20, 30, 40, 50, 60]
    assert sender.groups == [[1], [2, 3, 4, 5, 6]]


async def test_a_group_is_at_most_the_limit() -> None:
    sender = Sender()
    sender.release.set()
    coalescer = Coalescer(sender, limit=3)
    answers = await asyncio.gather(*(coalescer.submit(n) for n in range(8)))
    assert answers == [n * 10 for n in range(8)]
    assert [len(g) for g in sender.groups] == [3, 3, 2]


async def test_a_failed_send_fails_each_item_it_carried_and_the_next_group_goes_on() -> None:
    sender = Sender()
    coalescer = Coalescer(sender, limit=32)
    first = asyncio.ensure_future(coalescer.submit(1))
    await _turns()
    group = [asyncio.ensure_future(coalescer.submit(n)) for n in (2, 3)]
    sender.failure = ConnectionResetError("lost")
    sender.release.set()
    with pytest.raises(ConnectionResetError):
        await first
    for item in group:
        with pytest.raises(ConnectionResetError):
            await item
    sender.failure = None
    assert await coalescer.submit(4) == 40


async def test_a_caller_that_goes_away_does_not_take_its_group_with_it() -> None:
    sender = Sender()
    coalescer = Coalescer(sender, limit=32)
    gone = asyncio.ensure_future(coalescer.submit(1))
    await _turns()
    stays = asyncio.ensure_future(coalescer.submit(2))
    await _turns()
    gone.cancel()
    sender.release.set()
    assert await stays == 20
    assert sender.groups == [[1], [2]]

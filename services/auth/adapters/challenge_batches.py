"""Group commit for passed MFA challenges (docs/decisions.md, "Passed challenges are
committed in groups"): the concurrent challenges of one auth process share their
statements. A challenge queues its unlocked read, then its write; one sender per kind
takes everything queued while its previous statement ran (nothing waits at low load: the
first item of an idle sender goes at once) and sends it as one statement, the writes as
one transaction. What a challenge cost in round trips, statement starts and WAL flushes
is shared by the group; each item's outcome is still its own (schema.sql:
`challenge_passed_batch`).

A statement that fails (the connection lost, PostgreSQL away, a cancel) fails every item
it carried with that same exception: the requests are refused as one alone would be, and
a write group is one transaction, so none of it was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg

from services.auth.adapters import challenges
from services.auth.adapters.projection import LoginProjection
from shared.eventstore import ConcurrencyConflict

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# At most this many items in one statement: each written item is a subtransaction, and a
# transaction with more than 64 of them overflows PostgreSQL's per-backend cache of
# subtransaction ids, which makes every other session's snapshots slower.
MAX_GROUP = 32


class Coalescer(Generic[Item, Outcome]):
    """One sender at a time: each `submit` waits for the outcome of its item, sent with
    whatever else was queued before the sender took the queue."""

    def __init__(
        self,
        send: Callable[[Sequence[Item]], Awaitable[Sequence[Outcome]]],
        limit: int = MAX_GROUP,
    ) -> None:
        self._send = send
        self._limit = limit
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        waiting: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, waiting))
        if self._sender is None:
            # A task of its own: a caller that goes away does not take the group with it.
            self._sender = asyncio.create_task(self._drain())
        return await waiting

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._limit]
                del self._queue[: self._limit]
                try:
                    outcomes = await self._send([item for item, _ in group])
                except Exception as exc:  # every item fails as the statement did
                    for _, waiting in group:
                        if not waiting.done():
                            waiting.set_exception(exc)
                    continue
                except BaseException:
                    for _, waiting in group:
                        waiting.cancel()
                    raise
                for (_, waiting), outcome in zip(group, outcomes, strict=True):
                    if not waiting.done():
                        waiting.set_result(outcome)
        finally:
            self._sender = None
            # What is still queued when the sender is cancelled (shutdown) is refused.
            for _, waiting in self._queue:
                waiting.cancel()
            self._queue.clear()


class ChallengeGroups:
    """The two coalescers of one auth process: unlocked reads and passed writes."""

    def __init__(self, pool: asyncpg.Pool, projection: LoginProjection) -> None:
        self._pool = pool
        self._projection = projection
        self._reads = Coalescer(self._read)
        self._writes = Coalescer(self._write)

    async def open(self, token: str, now: datetime) -> challenges.Opened | None:
        """`challenges.open_challenge(…, lock=False)`, read with the others queued."""
        return await self._reads.submit((token, now))

    async def passed(self, claim: challenges.Passing) -> int | challenges.Claim:
        """`challenges.passed(claim)` of a claim read unlocked, written with the others
        queued; `Claim.CHANGED` also when the group could not decide it alone."""
        outcome = await self._writes.submit(claim)
        if isinstance(outcome, ConcurrencyConflict):
            raise outcome
        return challenges.settled(claim, outcome)

    async def _read(self, asked: Sequence[tuple[str, datetime]]) -> list[challenges.Opened | None]:
        async with self._pool.acquire() as conn:
            return await challenges.open_challenges(conn, self._projection, asked)

    async def _write(
        self, claims: Sequence[challenges.Passing]
    ) -> list[int | challenges.Claim | ConcurrencyConflict]:
        async with self._pool.acquire() as conn:
            return await challenges.passed_together(conn, claims)

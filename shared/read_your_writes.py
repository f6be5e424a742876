"""Read-your-writes: a command's reply names what it wrote, and a read can wait for it.

A write position is an aggregate and the version a command brought it to, written as one
token, `{aggregate_type}:{version}:{aggregate_id}` (e.g. `contact:3:c-42`). Versions of one
aggregate are gapless and travel in order on one partition, so a read model that has
applied version ≥ v of that aggregate reflects the write (and everything before it).
Offsets would not do: the reply is stored before the outbox relay publishes, so no offset
is known yet when the command is answered.

A read given `min_position` answers only once its read model has applied it, waiting at
most `READ_WAIT_S`; past that it refuses with a 503 `not-caught-up` problem (and
Retry-After), never with the old answer.

Imports neither asyncpg nor FastAPI: every command reply carries a position, so the admin
CLI loads this module, and those two cost it ~0.7 s of start-up (the route parameter,
`MinPosition`, is in shared.http.path_params).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncpg

# How long a read waits for its read model to apply a position before it refuses: long
# enough for a healthy projection (milliseconds behind), short enough for a caller's timeout.
READ_WAIT_S = 5.0
# While waiting, the version is read again after every applied batch, and at least this
# often: another replica may be the one that applies it.
_RECHECK_S = 0.1

POSITION_PATTERN = r"^[a-z_]{1,40}:[0-9]{1,9}:[A-Za-z0-9._:@-]{1,100}$"


@dataclass(frozen=True)
class WritePosition:
    aggregate_type: str
    aggregate_id: str
    version: int

    @classmethod
    def parse(cls, token: str) -> WritePosition:
        """The position a token names; ValueError if it names none."""
        kind, version, aggregate_id = token.split(":", 2)
        if not kind or not aggregate_id or not version.isdigit():
            raise ValueError(f"not a write position: {token!r}")
        return cls(kind, aggregate_id, int(version))

    def token(self) -> str:
        return f"{self.aggregate_type}:{self.version}:{self.aggregate_id}"


class NotCaughtUp(Exception):
    """The read model has not applied the position the reader asked for, within the wait."""


class BatchSignal(Protocol):
    async def batch_applied(self, timeout_s: float) -> None:
        """Return after the next applied batch, or after `timeout_s`."""


# The version of an aggregate the read model has applied (None: none of it, or not in
# the reader's org: a reader learns nothing about another org's aggregates).
AppliedVersion = Callable[["asyncpg.Connection", WritePosition], Awaitable[int | None]]


async def wait_until_applied(
    pool: asyncpg.Pool,
    applied_version: AppliedVersion,
    position: WritePosition,
    signal: BatchSignal,
    within_s: float = READ_WAIT_S,
) -> None:
    """Return once the read model has applied `position`; NotCaughtUp after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        async with pool.acquire() as conn:
            applied = await applied_version(conn, position)
        # Version 0 is an aggregate nothing was ever written to (a no-op on a new org).
        if (applied or 0) >= position.version:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotCaughtUp(position.token())
        await signal.batch_applied(min(remaining, _RECHECK_S))


async def wait_for(
    pool: asyncpg.Pool,
    applied_version: AppliedVersion,
    token: str | None,
    signal: BatchSignal,
    within_s: float = READ_WAIT_S,
) -> None:
    """`wait_until_applied` for a route's optional `min_position` (None: no wait)."""
    if token is None:
        return
    await wait_until_applied(pool, applied_version, WritePosition.parse(token), signal, within_s)


async def sleep_at_most(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for `event`, or `timeout_s`, whichever comes first."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return

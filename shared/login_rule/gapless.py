"""DESIGN.md §11 "Gapless": an aggregate's events apply one version after another (no I/O).

An event applies only at version = applied + 1. One at or below the applied version is a
duplicate and is skipped. One beyond a gap is held, and every later event of that
aggregate waits with it, until the missing versions arrive. So a record with a made-up
high version can neither jump a stream forward nor turn every later genuine event into
a "duplicate"; at worst it waits, and the decisions that depend on it fail closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar


class Versioned(Protocol):
    @property
    def aggregate_version(self) -> int: ...


E = TypeVar("E", bound=Versioned)


class VersionGap(ValueError):
    """An event was about to be applied beyond a gap: a caller skipped `in_order`."""


class HistoryIncomplete(Exception):
    """A contact's stream waits beyond a gap: nothing about it may be decided or granted."""


class InOrder(NamedTuple, Generic[E]):
    """Where one aggregate's held and newly arrived events stand.

    A named tuple, not a dataclass: a rebuild makes one per aggregate per batch, and a
    tuple is built several times faster.
    """

    # Versions applied+1, applied+2, ...: apply these now, in this order.
    applicable: tuple[E, ...]
    # Beyond a gap, by version: they wait for the missing ones (held before or just now).
    held: tuple[E, ...]
    # Of `held`, those that arrived now: to be stored with the batch.
    newly_held: tuple[E, ...]
    # Held before, held no longer (applicable now, or duplicates): to be removed from the store.
    unheld: tuple[E, ...]
    # Duplicates: at or below the applied version, or a second event for a version already
    # applicable or held (the first one seen keeps its place; the stream is read in order).
    skipped: tuple[E, ...]

    @property
    def started_waiting(self) -> bool:
        """A wait begins: all that is held arrived now (a first gap, or a new one after the
        old one closed). The moment worth one log line; the batches after it stay quiet."""
        return bool(self.held) and len(self.newly_held) == len(self.held)

    def held_versions(self) -> tuple[int, ...]:
        return tuple(e.aggregate_version for e in self.held)


def in_order(applied: int, held: Sequence[E], arrived: Sequence[E]) -> InOrder[E]:
    """Sort what is held and what arrived into applicable, held and skipped.

    `applied` is the aggregate's applied version (0 if never seen), `held` what waits from
    before (in version order), `arrived` what the log delivered now (in log order).
    """
    if not held:
        # The common case: nothing waits and the batch continues the stream exactly.
        expected = applied + 1
        for event in arrived:
            if event.aggregate_version != expected:
                break
            expected += 1
        else:
            return InOrder(tuple(arrived), (), (), (), ())

    by_version: dict[int, E] = {}
    skipped: list[E] = []
    for event in (*held, *arrived):  # held first: it was read from the log first
        version = event.aggregate_version
        if version <= applied or version in by_version:
            skipped.append(event)
        else:
            by_version[version] = event
    applicable: list[E] = []
    version = applied + 1
    while version in by_version:
        applicable.append(by_version.pop(version))
        version += 1
    waiting = tuple(by_version[v] for v in sorted(by_version))

    held_before = {id(e) for e in held}
    still_held = {id(e) for e in waiting}
    return InOrder(
        applicable=tuple(applicable),
        held=waiting,
        newly_held=tuple(e for e in waiting if id(e) not in held_before),
        unheld=tuple(e for e in held if id(e) not in still_held),
        skipped=tuple(skipped),
    )

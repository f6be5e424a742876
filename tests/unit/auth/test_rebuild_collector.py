"""The rebuild runs the cyclic garbage collector less often, and only while it runs."""

from __future__ import annotations

import gc

import pytest

from services.auth.entrypoints.rebuild import REBUILD_GC_THRESHOLDS, fewer_collections


def test_the_collector_runs_less_often_while_rebuilding_and_as_before_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == REBUILD_GC_THRESHOLDS
        assert REBUILD_GC_THRESHOLDS[0] >= 100 * before[0]
    assert gc.get_threshold() == before


def test_a_failed_rebuild_restores_the_collector_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("broker away")
    assert gc.get_threshold() == before

"""A serving process keeps the cyclic collector out of its tail latency: it collects the
young generation less often, and once its lifespan has started it freezes the start-up
heap out of every later collection (shared.http.heap)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.http import serving
from shared.http.heap import YOUNG_THRESHOLD
from shared.settings import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, afterwards."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_serving_collects_less_often_and_freezes_once_started(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_during_start_up: list[int] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.started = [object()]  # made at start-up: frozen with the rest
        frozen_during_start_up.append(gc.get_freeze_count())
        yield

    app = FastAPI(lifespan=lifespan)
    served: list[Any] = []
    monkeypatch.setattr(serving.uvicorn, "run", lambda app, **_: served.append(app))

    serving.run(app, Settings(), port=1)

    assert served == [app]
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0  # not before the app has started
    with TestClient(app):
        assert frozen_during_start_up == [0]  # not during its start-up either
        assert gc.get_freeze_count() > 0
        # In the permanent generation, which no collection (nor gc.get_objects) walks.
        assert not any(o is app.state.started for o in gc.get_objects())

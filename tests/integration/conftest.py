"""Fixtures shared by the integration tests that drive event streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.contracts import CONTACTS_EVENTS, DEADLETTER, PREFERENCES_EVENTS
from shared.db import open_pool
from tests.integration.streams import (
    FreshDatabase,
    FreshTopics,
    MakeSettings,
    Setup,
    started_producer,
)


@pytest.fixture
async def setup(
    fresh_topics: FreshTopics, fresh_database: FreshDatabase, make_settings: MakeSettings
) -> AsyncIterator[Setup]:
    """Fresh topics (3 partitions each), a fresh database with a pool, a started producer."""
    topics = await fresh_topics(PREFERENCES_EVENTS, CONTACTS_EVENTS, DEADLETTER, partitions=3)
    url = await fresh_database("projection")
    pool = await open_pool(url, min_size=1, max_size=4)
    try:
        async with started_producer(make_settings()) as producer:
            yield Setup(topics, url, pool, producer)
    finally:
        await pool.close()

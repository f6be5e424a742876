"""A service's projection consumer (shared.projection), as auth and audit run theirs: set up
from the service's settings, and read in a task beside the service's HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from shared.kafka import security_options
from shared.projection import Projection, ProjectionConsumer
from shared.settings import Settings
from shared.signing import TrustMap


def projection_consumer_from(
    settings: Settings,
    service: str,
    *,
    group_id: str,
    topics: Sequence[str],
    pool: asyncpg.Pool,
    projection: Projection,
    deadletter: AIOKafkaProducer,
    trust: TrustMap,
    registry: CollectorRegistry,
    shared_lock: int | None = None,
) -> ProjectionConsumer:
    """The consumer of `service`'s group: batch size, fetch wait, static membership and the
    broker login all come from the settings, the same way for every service."""
    return ProjectionConsumer(
        bootstrap=settings.kafka_bootstrap,
        topics=topics,
        pool=pool,
        projection=projection,
        deadletter=deadletter,
        trust=trust,
        group_id=group_id,
        group_instance_id=settings.group_instance_id(service),
        batch_size=settings.projection_batch_size,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        security=security_options(settings),
        shared_lock=shared_lock,
        registry=registry,
    )


@contextlib.asynccontextmanager
async def projection_running(consumer: ProjectionConsumer, name: str) -> AsyncIterator[None]:
    """Start the consumer and read in a task named `name` until the block ends, then stop."""
    await consumer.start()
    task = asyncio.create_task(consumer.run_until_cancelled(), name=name)
    try:
        yield
    finally:
        task.cancel()
        # Whatever the task died of was logged and shown by readyz; shutdown goes on.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()

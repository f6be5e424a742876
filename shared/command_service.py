"""The process around a command-owning service (preferences, contacts).

It answers commands from one Kafka topic (the reply goes to the command's `reply_to`),
relays its outbox, and serves `/healthz`, `/readyz` and `/metrics` over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from shared.commands import CommandReply
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool
from shared.kafka import new_producer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.signing_settings import signer_from

log = logging.getLogger(__name__)

Execute = Callable[[bytes], Awaitable[CommandReply]]


def command_service_app(
    *,
    name: str,
    settings: Settings,
    database_url: str,
    command_topic: str,
    schema: str,
    build: Callable[[asyncpg.Pool], Execute],
) -> FastAPI:
    # Refuse to start without a key: everything this service publishes must be signed.
    signer = signer_from(settings, name)
    registry = CollectorRegistry()
    commands = Counter(
        "portal_mfa_commands", "Commands handled", ["service", "outcome"], registry=registry
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        client_id=f"portal-mfa-{name}",
    )
    state: dict[str, Any] = {}

    # NACK_ON_ERROR: a command is committed only after its reply is out; an infrastructure
    # failure leaves it to be redelivered, and the command log makes the retry harmless.
    @broker.subscriber(
        command_topic,
        group_id=f"portal-mfa-{name}",
        # Static membership: a restarted instance takes its partitions back at once instead
        # of waiting out a rebalance (measured on the dev broker: 19.6 s -> 9.4 s to answer).
        group_instance_id=settings.group_instance_id(name),
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{name} commands",
    )
    async def on_command(message: KafkaMessage) -> dict[str, Any]:
        reply: CommandReply = await state["execute"](message.body)
        commands.labels(name, "accepted" if reply.ok else "rejected").inc()
        return reply.model_dump(mode="json")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(database_url)
        await apply_schema(pool, EVENTSTORE_SQL, schema)
        state["execute"] = build(pool)
        producer = new_producer(settings)
        await producer.start()
        relay = OutboxRelay(
            database_url, producer, signer, poll_interval_s=settings.relay_poll_interval_s
        )
        relay_task = asyncio.create_task(relay.run(), name=f"{name}-outbox-relay")
        await broker.start()
        state.update(pool=pool, relay_task=relay_task)
        log.info("%s ready", name)
        try:
            yield
        finally:
            await broker.stop()
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await producer.stop()
            await pool.close()

    app = FastAPI(title=f"portal-mfa {name}", lifespan=lifespan)
    app.state.broker = broker

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        relay_task: asyncio.Task[None] | None = state.get("relay_task")
        ready = relay_task is not None and not relay_task.done()
        if not ready:
            response.status_code = 503
        return {"ready": ready}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app

"""Kafka clients configured for this system's delivery guarantees (DESIGN.md §4)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.settings import Settings


def new_producer(
    settings: Settings, *, linger_ms: int = 2, idempotent: bool | None = None
) -> AIOKafkaProducer:
    # acks=all: an event counts as published only once every in-sync replica has it.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotence if idempotent is None else idempotent,
        linger_ms=linger_ms,
        client_id="portal-mfa",
    )

"""Every Kafka client takes its broker credentials from the settings (DESIGN.md §11).

The embedded broker speaks PLAINTEXT only (docs/security.md, "The broker"), so a client
that really offers SASL to it is refused at connect time. Each client built from SASL
settings must be refused here; one that ignored the settings would connect and pass.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker

from portal_mfa import command_client, dev_process
from portal_mfa.infra import EmbeddedBroker, ensure_topics
from services.auth.adapters.projection import LoginProjection
from shared.kafka import faststream_security, new_producer, security_options
from shared.projection import ProjectionConsumer
from shared.settings import Settings
from tests.signing_keys import TEST_TRUST

pytestmark = pytest.mark.integration

PASSWORD = "broker-password-never-logged-5150"


@pytest.fixture(scope="module")
async def plaintext_broker() -> AsyncIterator[str]:
    # Its own embedded broker, whatever broker the session's tests use.
    broker = await EmbeddedBroker.start(dev_process.free_port())
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def sasl(bootstrap: str) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        kafka_idempotence=False,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="auth",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
    )


def plaintext(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"kafka_security_protocol": "PLAINTEXT", "kafka_username": ""}
    )


async def start_producer(settings: Settings) -> None:
    producer = new_producer(settings)
    try:
        await producer.start()
    finally:
        await producer.stop()


async def create_topic(settings: Settings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap, ["credentials.probe"], security=security_options(settings)
    )


async def open_console(settings: Settings) -> None:
    # Its producer is new_producer (tested above): made PLAINTEXT here, so that the reply
    # consumer is the one client that must be refused.
    def plaintext_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
        return new_producer(plaintext(settings), **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(command_client, "new_producer", plaintext_producer)
        async with command_client.CommandClient(settings):
            pass


async def start_projection(settings: Settings) -> None:
    deadletter = new_producer(plaintext(settings))
    consumer = ProjectionConsumer(
        bootstrap=settings.kafka_bootstrap,
        topics=["credentials.probe"],
        pool=cast(asyncpg.Pool, None),  # never reached: the consumer is refused first
        projection=LoginProjection(),
        deadletter=deadletter,
        trust=TEST_TRUST,
        security=security_options(settings),
    )
    try:
        await consumer.start()
    finally:
        await consumer.stop()
        await deadletter.stop()


async def start_command_broker(settings: Settings) -> None:
    # shared.command_service builds its FastStream broker with the same `security=`.
    broker = KafkaBroker(settings.kafka_bootstrap, security=faststream_security(settings))
    try:
        await broker.start()
    finally:
        await broker.stop()


CLIENTS: dict[str, Callable[[Settings], Awaitable[None]]] = {
    "producer": start_producer,
    "admin": create_topic,
    "console": open_console,
    "projection": start_projection,
    "faststream": start_command_broker,
}


async def test_the_same_clients_connect_with_the_default_settings(plaintext_broker: str) -> None:
    plain = plaintext(sasl(plaintext_broker))
    await start_producer(plain)
    await create_topic(plain)
    await start_command_broker(plain)


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_a_client_made_from_sasl_settings_offers_sasl(
    plaintext_broker: str, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaConnectionError) as refused:
        await CLIENTS[client](sasl(plaintext_broker))
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in caplog.text

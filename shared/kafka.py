"""Kafka clients configured for this system's delivery guarantees (DESIGN.md §4) and for
the principal each process is on the brokers (DESIGN.md §11)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from shared.settings import Settings

if TYPE_CHECKING:
    # FastStream is imported where a broker is built: the admin CLI, which sends commands
    # with aiokafka alone, would otherwise pay ~0.15 s of start-up for it.
    from faststream.security import BaseSecurity


def security_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client here takes to reach the brokers.

    Every producer, consumer and admin client is built with these, so one setting moves
    the whole process between PLAINTEXT, SASL/SCRAM and mTLS.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_username,
            sasl_plain_password=settings.kafka_password.get_secret_value(),
        )
    if protocol in ("SSL", "SASL_SSL"):
        # Verifies the broker's certificate and host name; no CA file: the system's CAs.
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ca_file or None,
            certfile=settings.kafka_cert_file or None,
            keyfile=settings.kafka_key_file or None,
        )
    return options


def faststream_security(settings: Settings) -> BaseSecurity | None:
    """The same principal in FastStream's terms (its `KafkaBroker(security=...)`)."""
    from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

    sasl_classes: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "SCRAM-SHA-512": SASLScram512,
        "SCRAM-SHA-256": SASLScram256,
        "PLAIN": SASLPlaintext,
    }
    options = security_options(settings)
    ssl_context = options.get("ssl_context")
    if "sasl_mechanism" in options:
        sasl = sasl_classes[options["sasl_mechanism"]]
        return sasl(
            options["sasl_plain_username"],
            options["sasl_plain_password"],
            ssl_context=ssl_context,
            use_ssl=ssl_context is not None,
        )
    if ssl_context is not None:
        return BaseSecurity(ssl_context=ssl_context)
    return None


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
        **security_options(settings),
    )

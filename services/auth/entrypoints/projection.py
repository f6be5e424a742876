"""The login projection's Kafka subscriber: the consumer that folds the preferences and
contacts topics into auth's projection, with auth's reactions, batch by batch."""

from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from services.auth.adapters.projection import TOPICS, LoginProjection
from services.auth.adapters.projection_schemas import SWAP_LOCK
from services.auth.flows.reactions import AuthProjection
from shared.projection import ProjectionConsumer
from shared.service_projection import projection_consumer_from
from shared.settings import Settings
from shared.signing import TrustMap

PROJECTION_GROUP = "portal-mfa-auth-projection"


def projection_consumer(
    settings: Settings,
    pool: asyncpg.Pool,
    projection: LoginProjection,
    deadletter: AIOKafkaProducer,
    trust: TrustMap,
    registry: CollectorRegistry,
) -> ProjectionConsumer:
    return projection_consumer_from(
        settings,
        "auth",
        group_id=PROJECTION_GROUP,
        topics=TOPICS,
        pool=pool,
        projection=AuthProjection(projection),
        deadletter=deadletter,
        trust=trust,
        # A rebuild's swap takes it exclusively: no live batch applies while schemas rename.
        shared_lock=SWAP_LOCK,
        registry=registry,
    )

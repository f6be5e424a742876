"""auth entry point: the projection consumer, the outbox relay and the HTTP API, wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.auth.domain.secret_box import SecretBox, parse_keyring
from services.auth.http import operations, portal
from services.auth.http.body_limit import BodyLimit
from services.auth.http.problems import install_problem_handlers
from services.auth.projection import TOPICS, LoginProjection
from services.auth.reactions import AuthProjection
from services.auth.rebuild import SWAP_LOCK
from services.auth.runtime import AuthRuntime
from shared.admin_identity import verifier_from
from shared.contracts import now_utc
from shared.db import EVENTSTORE_SQL, apply_schema, open_pool, read_sql
from shared.http.client_address import parse_proxies
from shared.http.hardening import harden
from shared.kafka import new_producer
from shared.observability.http import FASTAPI_TELEMETRY, observe
from shared.outbox import OutboxRelay
from shared.service_projection import projection_consumer_from
from shared.settings import Settings, SettingsError
from shared.signing_settings import signer_from, trust_from

log = logging.getLogger(__name__)

PROJECTION_GROUP = "portal-mfa-auth-projection"


def secret_box_from(settings: Settings) -> SecretBox:
    if not settings.secret_keys or not settings.secret_key_id:
        raise SettingsError(
            "invalid setting PORTAL_MFA_SECRET_KEYS: auth needs a key to seal TOTP secrets"
            " (with PORTAL_MFA_SECRET_KEY_ID naming the current one)"
        )
    try:
        return SecretBox(parse_keyring(settings.secret_keys), settings.secret_key_id)
    except (ValueError, KeyError) as exc:
        raise SettingsError(f"invalid setting PORTAL_MFA_SECRET_KEYS: {exc}") from None


def create_app(settings: Settings, database_url: str) -> FastAPI:
    secret_box = secret_box_from(settings)
    signer = signer_from(settings, "auth")
    trust = trust_from(settings)
    admin_verifier = verifier_from(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(database_url, max_size=20)
        projection = LoginProjection()
        await apply_schema(pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
        async with pool.acquire() as conn:
            await projection.create(conn)
        producer = new_producer(settings)
        await producer.start()
        consumer = projection_consumer_from(
            settings,
            "auth",
            group_id=PROJECTION_GROUP,
            topics=TOPICS,
            pool=pool,
            projection=AuthProjection(projection),
            deadletter=producer,
            trust=trust,
            shared_lock=SWAP_LOCK,
            registry=app.state.metrics,
        )
        await consumer.start()
        relay = OutboxRelay(
            database_url,
            producer,
            signer,
            poll_interval_s=settings.relay_poll_interval_s,
            name="auth",
            stuck_after_s=settings.relay_stuck_after_s,
            registry=app.state.metrics,
        )
        tasks = [
            asyncio.create_task(consumer.run_until_cancelled(), name="auth-projection"),
            asyncio.create_task(relay.run(), name="auth-outbox-relay"),
        ]
        app.state.runtime = AuthRuntime(
            pool=pool,
            projection=projection,
            consumer=consumer,
            secret_box=secret_box,
            clock=now_utc,
            relay=relay,
            trusted_proxies=parse_proxies(settings.trusted_proxies),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="portal-mfa auth", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    app.state.admin_verifier = admin_verifier
    install_problem_handlers(app)
    harden(app)
    app.add_middleware(BodyLimit)
    observe(app, "auth")
    app.include_router(operations.router)
    app.include_router(portal.router)
    return app

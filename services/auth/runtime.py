"""What auth's flows need, built once by the entry point."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.auth.domain.secret_box import SecretBox
from services.auth.flows.refusal import not_ready
from services.auth.projection import LoginProjection
from shared.contracts import Cause
from shared.http.client_address import Network
from shared.observability import context
from shared.outbox import OutboxRelay
from shared.projection import ProjectionConsumer


@dataclass
class AuthRuntime:
    pool: asyncpg.Pool
    projection: LoginProjection
    consumer: ProjectionConsumer
    secret_box: SecretBox
    clock: Callable[[], datetime]
    relay: OutboxRelay | None = None
    # Proxies whose X-Forwarded-For is believed (PORTAL_MFA_TRUSTED_PROXIES); none by default.
    trusted_proxies: tuple[Network, ...] = ()

    def require_ready(self) -> None:
        # Fail closed: with a stale projection a login might skip a second factor it needs.
        if not self.consumer.ready:
            raise not_ready()

    def cause(self, actor: str) -> Cause:
        # The request's id correlates its events with its log lines (docs/observability.md).
        correlation = context.correlation_id() or str(uuid.uuid4())
        return Cause(actor=actor, at=self.clock(), correlation_id=correlation)


# async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request on
# every route for what is an attribute read.
async def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[AuthRuntime, Depends(_runtime)]

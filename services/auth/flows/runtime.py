"""What auth's flows need, built once by `bootstrap()`: storage, the clock, randomness."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.auth.adapters.challenge_batches import ChallengeGroups
from services.auth.adapters.decision_memory import DecisionMemory
from services.auth.adapters.projection import LoginProjection
from services.auth.domain.errors import NotReady
from services.auth.domain.randomness import SYSTEM_RANDOM, RandomSource
from services.auth.domain.secret_box import SecretBox
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
    random: RandomSource = SYSTEM_RANDOM
    # The lookup's answers in memory; never trusted unless its listener runs (bootstrap.py).
    memory: DecisionMemory = field(default_factory=DecisionMemory)
    # Passed challenges share their statements and commits (adapters/challenge_batches.py).
    challenge_groups: ChallengeGroups = field(init=False)

    def __post_init__(self) -> None:
        self.challenge_groups = ChallengeGroups(self.pool, self.projection)

    def require_ready(self) -> None:
        # Fail closed: with a stale projection a login might skip a second factor it needs.
        if not self.consumer.ready:
            raise NotReady()

    def cause(self, actor: str, at: datetime | None = None) -> Cause:
        # The request's id correlates its events with its log lines (docs/observability.md).
        correlation = context.correlation_id() or str(uuid.uuid4())
        return Cause(actor=actor, at=at or self.clock(), correlation_id=correlation)

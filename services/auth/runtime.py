"""What auth's request handlers need, built once by the entry point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.auth.projection import LoginProjection
from shared.projection import ProjectionConsumer


@dataclass
class AuthRuntime:
    pool: asyncpg.Pool
    projection: LoginProjection
    consumer: ProjectionConsumer
    clock: Callable[[], datetime]


def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[AuthRuntime, Depends(_runtime)]

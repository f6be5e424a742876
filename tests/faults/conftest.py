"""Fault tests own their broker and PostgreSQL: they pause, kill and restart them.

Always the embedded ones, whatever PORTAL_MFA_KAFKA_BOOTSTRAP / PORTAL_MFA_DATABASE_URL
say: a test cannot SIGSTOP a server it does not run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest

from portal_mfa import dev_process
from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres


@pytest.fixture
async def own_broker() -> AsyncIterator[EmbeddedBroker]:
    broker = await EmbeddedBroker.start(dev_process.free_port())
    try:
        yield broker
    finally:
        if broker.process.poll() is None:
            os.kill(broker.pid, signal.SIGCONT)  # a failed test may leave it paused
        broker.stop()


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    server = await EmbeddedPostgres.start()
    try:
        yield server
    finally:
        server.stop()

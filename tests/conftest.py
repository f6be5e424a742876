"""Session infrastructure for the tests: a real broker and a real PostgreSQL (DESIGN.md §8).

Embedded by default; `PORTAL_MFA_KAFKA_BOOTSTRAP` / `PORTAL_MFA_DATABASE_URL` point the
tests at external servers instead; `PORTAL_MFA_TEST_INFRA=containers` starts Apache Kafka
and PostgreSQL containers (tests/containers.py) and points the tests at them the same way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from portal_mfa import dev_process
from portal_mfa.infra import (
    EmbeddedBroker,
    EmbeddedPostgres,
    drop_database,
    ensure_database,
    ensure_topics,
)
from shared.settings import Settings
from tests import containers

FreshDatabase = Callable[..., Awaitable[str]]
# The tiers that cross a real broker or PostgreSQL, which the containers replace.
_INFRA_TIERS = ("integration", "e2e")


def pytest_configure(config: pytest.Config) -> None:
    mode = os.environ.get(containers.MODE_VAR, "embedded")
    if mode not in containers.MODES:
        raise pytest.UsageError(
            f"{containers.MODE_VAR} must be one of {', '.join(containers.MODES)}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With containers asked for: start them once for the session, or skip the tiers that
    need them, with the reason on one line."""
    if os.environ.get(containers.MODE_VAR) != "containers":
        return
    tiered = [item for item in items if set(item.path.parts) & set(_INFRA_TIERS)]
    if not tiered:
        return
    unavailable = containers.docker_unavailable()
    if unavailable is not None:
        skip = pytest.mark.skip(reason=f"{containers.MODE_VAR}=containers: {unavailable}")
        for item in tiered:
            item.add_marker(skip)
        return
    env, stop = containers.start()
    config.add_cleanup(stop)
    os.environ.update(env)


FreshTopics = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    return dev_process.free_port()


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    """Bootstrap address of the session's broker (external if configured, else embedded)."""
    external = os.environ.get("PORTAL_MFA_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = await EmbeddedBroker.start(dev_process.free_port())
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
async def postgres_server_url() -> AsyncIterator[str]:
    """URL of a maintenance database on the session's PostgreSQL server (external or embedded)."""
    external = os.environ.get("PORTAL_MFA_DATABASE_URL")
    if external:
        yield external
        return
    server = await EmbeddedPostgres.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


@pytest.fixture
async def fresh_database(postgres_server_url: str) -> AsyncIterator[FreshDatabase]:
    """Factory: `await fresh_database()` -> URL of a new empty database, dropped after the test."""
    names: list[str] = []

    async def create(prefix: str = "test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex}"
        names.append(name)
        return await ensure_database(postgres_server_url, name)

    yield create
    for name in names:
        await drop_database(postgres_server_url, name)


@pytest.fixture
def fresh_topics(kafka_bootstrap: str) -> FreshTopics:
    """Factory: `await fresh_topics("a", "b")` -> {"a": "a.<test id>", ...}, topics created."""
    suffix = uuid.uuid4().hex[:12]

    async def create(*names: str, partitions: int = 1) -> dict[str, str]:
        unique = {name: f"{name}.{suffix}" for name in names}
        await ensure_topics(kafka_bootstrap, list(unique.values()), partitions)
        return unique

    return create


@pytest.fixture(scope="session")
def kafka_idempotence() -> bool:
    """Real Kafka takes the idempotent producer; the embedded dev broker refuses it."""
    return "PORTAL_MFA_KAFKA_BOOTSTRAP" in os.environ


@pytest.fixture
def make_settings(kafka_bootstrap: str, kafka_idempotence: bool) -> Callable[..., Settings]:
    """Factory: Settings for the session's broker, with any field overridden."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_idempotence": kafka_idempotence,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make

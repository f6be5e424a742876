"""`PORTAL_MFA_TEST_INFRA=containers`: Apache Kafka and PostgreSQL in Docker containers
(testcontainers) for the integration and end-to-end tiers, in place of the embedded ones.

The containers are started once per test session and handed to the tests the way external
servers are, through `PORTAL_MFA_KAFKA_BOOTSTRAP` and `PORTAL_MFA_DATABASE_URL` (so the
fixtures in tests/conftest.py and every `portal-mfa dev` a test starts use them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from portal_mfa.dev_process import free_port

KAFKA_IMAGE = "apache/kafka:3.9.0"  # the broker docker-compose.yml runs
POSTGRES_IMAGE = "postgres:17"
MODE_VAR = "PORTAL_MFA_TEST_INFRA"
MODES = ("embedded", "containers")


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used here (one line), or None when one answers."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except DockerException as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Docker engine answers ({first_line[:160]})"
    return None


def start() -> tuple[dict[str, str], Callable[[], None]]:
    """Start both containers; return the settings that point at them, and how to stop them."""
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    stops: list[Callable[[], None]] = []

    def stop_all() -> None:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()

    try:
        # The broker must advertise the address the tests reach it on, so its host port is
        # chosen before it starts (a random mapped port is known only after).
        host_port = free_port()
        kafka = (
            DockerContainer(KAFKA_IMAGE)
            .with_bind_ports(9092, host_port)
            .with_envs(
                KAFKA_NODE_ID="1",
                KAFKA_PROCESS_ROLES="broker,controller",
                KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
                KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{host_port}",
                KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
                KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
                KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
                KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
                # As in production: only the code creates topics.
                KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
            )
            .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
        )
        kafka.start()
        stops.append(kafka.stop)
        postgres = PostgresContainer(POSTGRES_IMAGE, driver=None)
        postgres.start()
        stops.append(postgres.stop)
        env = {
            "PORTAL_MFA_KAFKA_BOOTSTRAP": f"{kafka.get_container_host_ip()}:{host_port}",
            "PORTAL_MFA_DATABASE_URL": postgres.get_connection_url(),
        }
    except BaseException:
        stop_all()
        raise
    return env, stop_all

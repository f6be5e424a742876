"""The embedded broker and PostgreSQL that the dev stack and the tests stand on."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from portal_mfa.infra import (
    EmbeddedBroker,
    EmbeddedPostgres,
    PortTaken,
    ensure_port_free,
    ensure_topics,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def test_broker_creates_topics_and_round_trips_a_record(free_port: int) -> None:
    broker = await EmbeddedBroker.start(free_port)
    try:
        assert broker.bootstrap == f"127.0.0.1:{free_port}"
        assert await ensure_topics(broker.bootstrap, {"demo.events": 3}) == ["demo.events"]
        assert await ensure_topics(broker.bootstrap, ["demo.events", "demo.more"]) == ["demo.more"]

        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False
        )
        await producer.start()
        try:
            sent = await producer.send_and_wait("demo.events", b"hello", key=b"contact-1")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            "demo.events",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=10)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (b"contact-1", b"hello")
        assert (record.partition, record.offset) == (sent.partition, sent.offset)
    finally:
        broker.stop()


async def test_a_second_broker_on_a_taken_port_is_a_clear_error(free_port: int) -> None:
    first = await EmbeddedBroker.start(free_port)
    try:
        with pytest.raises(
            PortTaken, match=rf"127\.0\.0\.1:{free_port} .*PORTAL_MFA_DEV_KAFKA_PORT"
        ):
            await EmbeddedBroker.start(free_port, port_env_var="PORTAL_MFA_DEV_KAFKA_PORT")
        assert await ensure_topics(first.bootstrap, ["still.serving"]) == ["still.serving"]
    finally:
        first.stop()


async def test_broker_stop_ends_the_process_and_frees_the_port(free_port: int) -> None:
    broker = await EmbeddedBroker.start(free_port)
    assert alive(broker.pid)

    broker.stop()
    broker.stop()

    assert not alive(broker.pid)
    ensure_port_free(free_port)


async def test_embedded_postgres_creates_databases_idempotently_and_stores_rows() -> None:
    server = await EmbeddedPostgres.start()
    try:
        url = await server.create_database("portal auth")
        assert await server.create_database("portal auth") == url == server.url("portal auth")
        assert urlsplit(url).query == urlsplit(server.url("postgres")).query  # ?host=<socket dir>

        connection = await asyncpg.connect(url)
        try:
            await connection.execute("CREATE TABLE contact (id int PRIMARY KEY, name text)")
            await connection.execute("INSERT INTO contact VALUES (1, 'Ada')")
            assert await connection.fetchval("SELECT name FROM contact WHERE id = 1") == "Ada"
            assert await connection.fetchval("SELECT current_database()") == "portal auth"
        finally:
            await connection.close()
    finally:
        server.stop()


async def test_embedded_postgres_stop_ends_its_processes_and_deletes_its_data() -> None:
    server = await EmbeddedPostgres.start()
    pids = [server.pid, *(child.pid for child in psutil.Process(server.pid).children())]
    scratch = server.data_dir.parent

    server.stop()
    server.stop()

    assert not any(alive(pid) for pid in pids)
    assert not scratch.exists()


async def test_embedded_postgres_refuses_a_data_dir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(ValueError, match="neither empty nor a PostgreSQL data dir"):
        await EmbeddedPostgres.start(tmp_path)
    assert (tmp_path / "notes.txt").exists()


async def test_embedded_postgres_starts_fresh_over_a_killed_runs_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    # A dev stack that was SIGKILLed: its server keeps running, its data dir stays.
    killed_run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys, time; from pathlib import Path;"
        "from portal_mfa.infra import EmbeddedPostgres;"
        "s = asyncio.run(EmbeddedPostgres.start(Path(sys.argv[1])));"
        "print(s.pid, flush=True); time.sleep(600)",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert killed_run.stdout is not None
    orphan_pid = int(await asyncio.wait_for(killed_run.stdout.readline(), timeout=60))
    killed_run.kill()
    await killed_run.wait()
    assert alive(orphan_pid)

    server = await EmbeddedPostgres.start(data_dir)
    try:
        assert not alive(orphan_pid)
        connection = await asyncpg.connect(server.url("postgres"))
        try:
            assert await connection.fetchval("SELECT count(*) FROM pg_database") == 3
        finally:
            await connection.close()
    finally:
        server.stop()
    assert not data_dir.exists()


async def test_fresh_databases_are_distinct_and_empty(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    first, second = await fresh_database(), await fresh_database()
    assert first != second
    for url in (first, second):
        connection = await asyncpg.connect(url)
        try:
            tables = await connection.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            assert tables == 0
            await connection.execute("CREATE TABLE marker (id int)")
        finally:
            await connection.close()


async def test_fresh_topics_are_unique_and_exist(
    fresh_topics: Callable[..., Awaitable[dict[str, str]]], kafka_bootstrap: str
) -> None:
    topics = await fresh_topics("portal.auth.events", "portal.deadletter")
    assert set(topics) == {"portal.auth.events", "portal.deadletter"}
    assert all(name.startswith(base + ".") for base, name in topics.items())

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert set(topics.values()) <= set(await admin.list_topics())
    finally:
        await admin.close()

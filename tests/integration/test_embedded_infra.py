"""The embedded broker and PostgreSQL that the dev stack and the tests stand on."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
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
from portal_mfa.infra.lifeline import postgres_processes
from portal_mfa.infra.postgres import SCRATCH_PREFIX, stop_stale_servers

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


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    """A temp dir for scratch dirs, short enough for PostgreSQL's socket path in it."""
    root = Path(tempfile.mkdtemp(prefix="pgroot-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def start_owner(
    data_dir: Path | None = None, scratch_root: Path | None = None
) -> tuple[asyncio.subprocess.Process, int, int, Path]:
    """A process that starts the embedded broker and PostgreSQL as the dev stack, a test
    session or a benchmark does, then idles: (it, broker pid, postmaster pid, data dir)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if scratch_root is not None:
        env["TMPDIR"] = str(scratch_root)
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys, time; from pathlib import Path;"
        "from portal_mfa import dev_process;"
        "from portal_mfa.infra import EmbeddedBroker, EmbeddedPostgres;"
        "b = asyncio.run(EmbeddedBroker.start(dev_process.free_port()));"
        "s = asyncio.run(EmbeddedPostgres.start(Path(sys.argv[1]) if sys.argv[1] else None));"
        "print(b.pid, s.pid, s.data_dir, flush=True); time.sleep(600)",
        str(data_dir or ""),
        stdout=asyncio.subprocess.PIPE,
        env=env,
        # Its own group, as a `portal-mfa dev` in another terminal: signals to it are its own.
        start_new_session=True,
    )
    assert owner.stdout is not None
    line = await asyncio.wait_for(owner.stdout.readline(), timeout=90)
    broker_pid, postmaster_pid, pgdata = line.decode().split()
    return owner, int(broker_pid), int(postmaster_pid), Path(pgdata)


def kill_lifelines(owner_pid: int) -> None:
    """As a run from before lifelines, or one whose lifelines were killed with it."""
    for child in psutil.Process(owner_pid).children():
        if any("lifeline.py" in part for part in child.cmdline()):
            child.kill()
            # Its parent does not reap it: a zombie is as dead as it gets.
            deadline = time.monotonic() + 5
            while alive(child.pid) and time.monotonic() < deadline:
                time.sleep(0.02)


async def wait_gone(pids: list[int], within_s: float) -> list[int]:
    for _ in range(int(within_s / 0.05)):
        if not any(alive(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
async def test_embedded_servers_end_with_the_process_that_started_them(
    scratch_root: Path, signum: signal.Signals
) -> None:
    # SIGKILL runs no cleanup at all; SIGTERM with Python's default handler runs no
    # atexit hook either. PostgreSQL is started from a worker thread that has exited.
    owner, broker_pid, postmaster_pid, pgdata = await start_owner(scratch_root=scratch_root)
    server_pids = [broker_pid, postmaster_pid, *(p.pid for p in postgres_processes(pgdata))]
    assert len(server_pids) > 3  # the postmaster has its background processes

    owner.send_signal(signum)
    await owner.wait()

    assert await wait_gone(server_pids, within_s=5) == []
    assert postgres_processes(pgdata) == []
    # Its scratch dir (data, owner file) goes with it, once no server can come up in it.
    for _ in range(100):
        left = [name for name in os.listdir(scratch_root) if name.startswith(SCRATCH_PREFIX)]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == []


async def test_a_stale_server_in_a_scratch_dir_is_stopped_at_the_next_start(
    scratch_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed, _, stale_pid, stale_data = await start_owner(scratch_root=scratch_root)
    live, _, live_pid, live_data = await start_owner(scratch_root=scratch_root)
    try:
        kill_lifelines(killed.pid)
        killed.kill()
        await killed.wait()
        await asyncio.sleep(0.5)
        assert alive(stale_pid)

        with caplog.at_level(logging.WARNING, logger="portal_mfa.infra.postgres"):
            cleared = stop_stale_servers(scratch_root)

        assert cleared == [stale_data.parent]
        assert not alive(stale_pid) and postgres_processes(stale_data) == []
        assert not stale_data.parent.exists()
        assert f"stopped the embedded PostgreSQL on {stale_data}" in caplog.text
        assert f"(pid {killed.pid}) is gone" in caplog.text
        # The server of a run still going is not ours to stop.
        assert alive(live_pid) and live_data.exists()
    finally:
        live.kill()
        await live.wait()
    assert await wait_gone([live_pid], within_s=5) == []


async def test_embedded_postgres_starts_fresh_over_a_killed_runs_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    # A dev stack killed with its lifelines: its server keeps running, its data dir stays.
    killed_run, _, orphan_pid, _ = await start_owner(data_dir)
    kill_lifelines(killed_run.pid)
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


async def test_a_data_dir_still_in_use_is_a_clear_error_not_a_wipe(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    running, _, postmaster_pid, _ = await start_owner(data_dir)
    try:
        with pytest.raises(RuntimeError, match=rf"still in use by process {running.pid}\b"):
            await EmbeddedPostgres.start(data_dir)
        assert alive(postmaster_pid)
        assert (data_dir / "PG_VERSION").exists()
    finally:
        running.kill()
        await running.wait()
    assert await wait_gone([postmaster_pid], within_s=5) == []


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

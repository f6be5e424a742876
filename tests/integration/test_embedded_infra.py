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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
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


@dataclass
class Owner:
    """A process that started the embedded broker and PostgreSQL, and idles."""

    process: asyncio.subprocess.Process
    broker_pid: int
    postmaster_pid: int
    pgdata: Path

    def kill_postgres_lifeline(self) -> None:
        """As a run from before lifelines did, or one whose lifeline was killed with it."""
        lifelines = [
            child
            for child in psutil.Process(self.process.pid).children()
            if (cmdline := _cmdline(child))
            and "postgres" in cmdline
            and any(part.endswith("lifeline.py") for part in cmdline)
        ]
        assert len(lifelines) == 1
        lifelines[0].kill()
        # Its parent idles and does not reap it: a zombie is as dead as it gets.
        deadline = time.monotonic() + 5
        while alive(lifelines[0].pid):
            assert time.monotonic() < deadline, "the lifeline would not die"
            time.sleep(0.02)

    async def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        await self.process.wait()


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


StartOwner = Callable[..., Awaitable[Owner]]


@pytest.fixture
async def start_owner() -> AsyncIterator[StartOwner]:
    """Factory: start an owner as the dev stack, a test session or a benchmark would
    (`data_dir`, or a scratch dir under `scratch_root`); killed at the end whatever happens."""
    started: list[Owner] = []

    async def start(data_dir: Path | None = None, scratch_root: Path | None = None) -> Owner:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if scratch_root is not None:
            env["TMPDIR"] = str(scratch_root)
        process = await asyncio.create_subprocess_exec(
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
            # Its own group, as a `portal-mfa dev` in another terminal: signals are its own.
            start_new_session=True,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=90)
        broker_pid, postmaster_pid, pgdata = line.decode().split()
        owner = Owner(process, int(broker_pid), int(postmaster_pid), Path(pgdata))
        started.append(owner)
        return owner

    yield start
    for owner in started:
        await owner.kill()
    # Their lifelines end the servers; the next test should not share the cores with them.
    servers = [pid for owner in started for pid in (owner.broker_pid, owner.postmaster_pid)]
    await wait_gone(servers, within_s=10)


async def wait_gone(pids: list[int], within_s: float) -> list[int]:
    for _ in range(int(within_s / 0.05)):
        if not any(alive(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
async def test_embedded_servers_end_with_the_process_that_started_them(
    scratch_root: Path, start_owner: StartOwner, signum: signal.Signals
) -> None:
    # SIGKILL runs no cleanup at all; SIGTERM with Python's default handler runs no
    # atexit hook either. PostgreSQL is started from a worker thread that has exited.
    owner = await start_owner(scratch_root=scratch_root)
    postgres = [p.pid for p in postgres_processes(owner.pgdata)]
    assert owner.postmaster_pid in postgres and len(postgres) > 2  # and its workers
    assert alive(owner.broker_pid)

    await owner.kill(signum)

    assert await wait_gone([owner.broker_pid, *postgres], within_s=5) == []
    assert postgres_processes(owner.pgdata) == []
    # Its scratch dir (data, owner file) goes with it, once no server can come up in it.
    for _ in range(100):
        left = [name for name in os.listdir(scratch_root) if name.startswith(SCRATCH_PREFIX)]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == []


async def test_a_stale_server_in_a_scratch_dir_is_stopped_at_the_next_start(
    scratch_root: Path, start_owner: StartOwner, caplog: pytest.LogCaptureFixture
) -> None:
    killed = await start_owner(scratch_root=scratch_root)
    live = await start_owner(scratch_root=scratch_root)
    killed.kill_postgres_lifeline()
    await killed.kill()
    await asyncio.sleep(0.5)
    assert alive(killed.postmaster_pid)

    with caplog.at_level(logging.WARNING, logger="portal_mfa.infra.postgres"):
        cleared = stop_stale_servers(scratch_root)

    assert cleared == [killed.pgdata.parent]
    assert not alive(killed.postmaster_pid) and postgres_processes(killed.pgdata) == []
    assert not killed.pgdata.parent.exists()
    assert f"stopped the embedded PostgreSQL on {killed.pgdata}" in caplog.text
    assert f"(pid {killed.process.pid}) is gone" in caplog.text
    # The server of a run still going is not ours to stop.
    assert alive(live.postmaster_pid) and live.pgdata.exists()


async def test_embedded_postgres_starts_fresh_over_a_killed_runs_data_dir(
    start_owner: StartOwner, tmp_path: Path
) -> None:
    data_dir = tmp_path / "pgdata"
    # A dev stack killed with its lifeline: its server keeps running, its data dir stays.
    killed = await start_owner(data_dir)
    killed.kill_postgres_lifeline()
    await killed.kill()
    assert alive(killed.postmaster_pid)

    server = await EmbeddedPostgres.start(data_dir)
    try:
        assert not alive(killed.postmaster_pid)
        connection = await asyncpg.connect(server.url("postgres"))
        try:
            assert await connection.fetchval("SELECT count(*) FROM pg_database") == 3
        finally:
            await connection.close()
    finally:
        server.stop()
    assert not data_dir.exists()


async def test_a_data_dir_still_in_use_is_a_clear_error_not_a_wipe(
    start_owner: StartOwner, tmp_path: Path
) -> None:
    data_dir = tmp_path / "pgdata"
    running = await start_owner(data_dir)

    with pytest.raises(RuntimeError, match=rf"still in use by process {running.process.pid}\b"):
        await EmbeddedPostgres.start(data_dir)

    assert alive(running.postmaster_pid)
    assert (data_dir / "PG_VERSION").exists()


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

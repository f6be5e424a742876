"""Ends an embedded server once the process that started it is gone, however it went.

A killed parent (SIGKILL, or SIGTERM with Python's default handler) runs no atexit
hook, and neither server notices on its own: Tansu is a child in its own session, and
the postmaster's parent is pg_ctl, which exits once the server is up. So each embedded
server gets a lifeline, this file run as a small process of its own, which holds the
read end of a pipe whose only write end is in the starting process. The kernel closes
that end when the process dies, whichever thread started the server and whatever
signal killed it (unlike PR_SET_PDEATHSIG, which follows the spawning *thread* and is
not inherited by the postmaster). Reading `release` before the end means the server
was stopped in order; reading nothing means its owner is gone, and the lifeline ends
the server.

Run by path, not with -m: the package's __init__ imports the Kafka and PostgreSQL
clients, which a lifeline does not need. It imports only the standard library and psutil.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

RELEASE = b"release"
# Long enough for a postmaster's immediate shutdown or Tansu's, which take milliseconds.
GRACE_S = 5.0
# A pg_ctl that was mid-start when the owner died brings its postmaster up a moment later.
SETTLE_S = 1.5


class Lifeline:
    """The starting process's end of a lifeline; `release()` before stopping nothing else."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @classmethod
    def for_process_group(cls, pgid: int) -> Lifeline:
        """End process group `pgid` (SIGTERM, SIGKILL after a grace) once we are gone."""
        return cls._spawn(["group", str(pgid)])

    @classmethod
    def for_postgres(cls, pgdata: Path, scratch_dir: Path | None) -> Lifeline:
        """End every process of the server on `pgdata`, then delete `scratch_dir`."""
        return cls._spawn(["postgres", str(pgdata), str(scratch_dir or "")])

    @classmethod
    def _spawn(cls, arguments: list[str]) -> Lifeline:
        process = subprocess.Popen(
            [sys.executable, __file__, *arguments],
            stdin=subprocess.PIPE,
            # Not our output pipes: a reader of them (a test, a supervisor) would wait for
            # the lifeline too before it saw their end.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C and signals to our process group stay ours, and we
            # stop the servers in order then.
            start_new_session=True,
        )
        return cls(process)

    def release(self) -> None:
        """The server is stopped: let the lifeline exit without acting; idempotent."""
        stdin: IO[bytes] | None = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.write(RELEASE)
                stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(GRACE_S)


def end_process_group(leader: psutil.Process) -> None:
    """SIGTERM the group `leader` leads (SIGCONT too, in case it is paused); SIGKILL later."""
    if not leader.is_running():
        return
    pgid = leader.pid
    for signum in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)
    deadline = time.monotonic() + GRACE_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Members that are zombies (dead, waiting for a parent to reap them) count as gone.
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
    return False


_POSTGRES_PROGRAMS = frozenset({"postgres", "pg_ctl", "initdb"})


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Live processes of the server on `pgdata`: PostgreSQL's programs run in it, or
    given it as `-D` (the postmaster, and pg_ctl or initdb still at work on it). Only
    those: a shell someone left in that directory is not the server's."""
    found = []
    target = str(pgdata)
    for process in psutil.process_iter(["name", "cwd", "cmdline", "status"]):
        if (
            process.info["name"] not in _POSTGRES_PROGRAMS
            or process.info["status"] == psutil.STATUS_ZOMBIE
        ):
            continue
        cmdline = process.info["cmdline"] or []
        if process.info["cwd"] == target or any(
            flag == "-D" and value == target for flag, value in itertools.pairwise(cmdline)
        ):
            found.append(process)
    return found


def end_postgres(pgdata: Path) -> list[int]:
    """End every process of the server on `pgdata`; return the pids that were running.

    The postmaster gets SIGQUIT, PostgreSQL's immediate shutdown: it ends its backends and
    releases its shared memory. The data is thrown away, so no checkpoint is owed.
    Whatever is left after the grace is killed.
    """
    ended: list[int] = []
    deadline = time.monotonic() + GRACE_S
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        processes = postgres_processes(pgdata)
        if not processes:
            quiet_since = quiet_since or now
            if now - quiet_since >= SETTLE_S:
                return ended
            time.sleep(0.1)
            continue
        quiet_since = None
        if now >= deadline + GRACE_S:
            # Not ours to kill after all (another user's): nothing more to be done here.
            return ended
        for process in processes:
            if process.pid not in ended:
                ended.append(process.pid)
            with contextlib.suppress(psutil.Error):
                name = process.name()
                if now >= deadline or name in ("pg_ctl", "initdb"):
                    process.kill()
                elif "-D" in process.cmdline():
                    process.send_signal(signal.SIGQUIT)
                # Else a backend: its postmaster ends it.
        time.sleep(0.1)


def main(arguments: list[str]) -> int:
    kind, target, *rest = arguments
    leader: psutil.Process | None = None
    if kind == "group":
        # Taken now, so the group is not mistaken for a later one with the pid reused.
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(int(target))
    if sys.stdin.buffer.read() == RELEASE:
        return 0
    if kind == "group":
        if leader is not None:
            end_process_group(leader)
        return 0
    end_postgres(Path(target))
    if rest and rest[0]:
        shutil.rmtree(rest[0], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

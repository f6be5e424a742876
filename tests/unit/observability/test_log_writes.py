"""A serving process writes its INFO lines once per event-loop turn (one write for every
access line of the turn: docs/performance.md, the lookup's round), never later than that,
never out of order, and anything at WARNING or above at once."""

from __future__ import annotations

import asyncio
import io
import logging
import select
import threading
from collections.abc import Iterator

import pytest

from shared.observability.logs import WrittenPerLoopTurn, configure_logging


class CountedWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written: list[str] = []

    def write(self, text: str) -> int:
        self.writes += 1
        self.written.append(text)
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn]]:
    stream = CountedWrites()
    handler = WrittenPerLoopTurn(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("unit.per_loop_turn")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)


async def test_lines_of_one_turn_are_written_together_when_the_turn_is_over(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    logger, stream, _ = logged
    for i in range(3):
        logger.info("request %d answered", i)
    assert stream.getvalue() == ""  # still this turn
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == [f"INFO request {i} answered" for i in range(3)]
    assert stream.writes == 1


async def test_a_turn_s_lines_go_in_whole_lines_of_at_most_pipe_buf_bytes(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    # A pipe write of at most PIPE_BUF bytes is atomic: the dev stack's processes share
    # one pipe, and their lines must not interleave mid-line.
    logger, stream, _ = logged
    lines = [f"request {i} answered " + "é" * 100 for i in range(100)]
    for line in lines:
        logger.info(line)
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == [f"INFO {line}" for line in lines]
    assert stream.writes > 1
    for text in stream.written:
        assert text.endswith("\n") and len(text.encode()) <= select.PIPE_BUF


async def test_a_warning_is_written_at_once_after_what_waited(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    logger, stream, _ = logged
    logger.info("first")
    logger.warning("memory off")
    assert stream.getvalue().splitlines() == ["INFO first", "WARNING memory off"]
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == ["INFO first", "WARNING memory off"]


async def test_a_line_from_another_thread_is_written_at_once_and_in_order(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    logger, stream, _ = logged
    logger.info("on the loop")
    worker = threading.Thread(target=logger.info, args=("on a hashing thread",))
    worker.start()
    worker.join()
    assert stream.getvalue().splitlines() == ["INFO on the loop", "INFO on a hashing thread"]


def test_without_a_loop_each_line_is_written_at_once(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    logger, stream, _ = logged
    logger.info("one")
    assert stream.getvalue() == "INFO one\n"


async def test_flush_writes_what_waits(
    logged: tuple[logging.Logger, CountedWrites, WrittenPerLoopTurn],
) -> None:
    # logging.shutdown() flushes every handler at the interpreter's exit.
    logger, stream, handler = logged
    logger.info("last words")
    handler.flush()
    assert stream.getvalue() == "INFO last words\n"


def test_records_are_made_without_looking_up_thread_or_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Half the cost of a record, for fields no format of ours names.
    for flag in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, True)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        configure_logging("unit", "json")
        record = logging.LogRecord("unit", logging.INFO, __file__, 1, "answered", (), None)
        assert record.thread is None and record.process is None
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])

"""The request lines written straight to the service's handler are the lines logging writes."""

import asyncio
import io
import logging
import re
import sys

import pytest

from pixyproxy.entrypoints.logging_setup import LogHandler, configure_logging
from pixyproxy.entrypoints.middleware.request_log import log, request_line
from pixyproxy.entrypoints.request_id import request_id_var

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ")


@pytest.fixture
def stream(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    saved_flags = logging.logMultiprocessing, logging.logProcesses
    out = io.StringIO()

    def start() -> io.StringIO:
        """Configure logging onto `out`; in the test, not at set-up: pytest swaps stderr and adds its
        capture handlers to the root logger after set-up."""
        monkeypatch.setattr(sys, "stderr", out)
        configure_logging("INFO")
        return out

    yield start
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.logMultiprocessing, logging.logProcesses = saved_flags


def test_direct_lines_equal_logging_lines(stream, monkeypatch):
    stream = stream()
    assert LogHandler.direct_for(log) is not None
    token = request_id_var.set("host-20260101000000000000-1-7")
    try:
        request_line("REQUEST START")
        request_line("REQUEST END %s %s %d %.1fms", "GET", "/image/x", 404, 1.25)
        monkeypatch.setattr(LogHandler, "direct_for", staticmethod(lambda logger: None))
        request_line("REQUEST START")
        request_line("REQUEST END %s %s %d %.1fms", "GET", "/image/x", 404, 1.25)
    finally:
        request_id_var.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert all(STAMP.match(line) for line in lines)
    direct = [STAMP.sub("", line) for line in lines[:2]]
    generic = [STAMP.sub("", line) for line in lines[2:]]
    # Same but for the caller's line number (each call above is on its own line).
    assert [re.sub(r":\d+\]", ":N]", x) for x in direct] == [re.sub(r":\d+\]", ":N]", x) for x in generic]
    assert re.match(
        r"^INFO host-20260101000000000000-1-7 \[\d+\] \[test_direct_lines_equal_logging_lines:\d+\] "
        r"REQUEST END GET /image/x 404 1\.2ms$",
        direct[1],
    )


@pytest.mark.parametrize("direct", [True, False])
def test_the_line_number_is_the_callers(stream, monkeypatch, direct):
    stream = stream()
    if not direct:
        monkeypatch.setattr(LogHandler, "direct_for", staticmethod(lambda logger: None))
    request_line("REQUEST START")
    line = sys._getframe().f_lineno - 1
    assert stream.getvalue().rstrip().endswith(f"[test_the_line_number_is_the_callers:{line}] REQUEST START")


def test_another_handler_gets_the_record_through_logging(stream):
    stream = stream()
    seen: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(record)

    capture = Capture()
    logging.getLogger().addHandler(capture)
    try:
        assert LogHandler.direct_for(log) is None
        request_line("REQUEST END %s %s %d %.1fms", "GET", "/x", 200, 0.5)
    finally:
        logging.getLogger().removeHandler(capture)
    assert [r.getMessage() for r in seen] == ["REQUEST END GET /x 200 0.5ms"]
    assert stream.getvalue().rstrip().endswith("REQUEST END GET /x 200 0.5ms")  # and the stream still has it


def test_a_level_above_info_silences_both_ways(stream):
    stream = stream()
    logging.getLogger().setLevel(logging.WARNING)
    request_line("REQUEST START")
    assert stream.getvalue() == ""


class CountingStream(io.StringIO):
    """Counts the writes that reach the stream: each one is a system call on a real file."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def counted(stream, monkeypatch):
    def start() -> CountingStream:
        out = CountingStream()
        monkeypatch.setattr(sys, "stderr", out)
        configure_logging("INFO")
        return out

    return start


async def test_a_batched_line_goes_out_with_the_next_line_in_one_write(counted):
    out = counted()
    request_line("REQUEST START", batch=True)
    assert out.getvalue() == ""  # waiting
    request_line("REQUEST END %s %s %d %.1fms", "GET", "/x", 200, 0.5)
    assert out.writes == 1
    assert [line.split("] ")[-1] for line in out.getvalue().splitlines()] == [
        "REQUEST START",
        "REQUEST END GET /x 200 0.5ms",
    ]


async def test_a_batched_line_alone_goes_out_within_batch_seconds(counted, monkeypatch):
    monkeypatch.setattr(LogHandler, "batch_seconds", 0.01)
    out = counted()
    loop = asyncio.get_running_loop()
    request_line("REQUEST START", batch=True)
    assert out.getvalue() == ""
    written = loop.create_future()
    loop.call_later(0.01, lambda: loop.call_soon(written.set_result, None))  # just after the log's timer
    await written
    assert out.getvalue().rstrip().endswith("REQUEST START")


async def test_any_record_written_sooner_takes_the_waiting_line_first(counted):
    out = counted()
    request_line("REQUEST START", batch=True)
    logging.getLogger("pixyproxy.somewhere").warning("in between")
    lines = out.getvalue().splitlines()
    assert [line.split("] ")[-1] for line in lines] == ["REQUEST START", "in between"]


def test_logging_at_exit_writes_the_waiting_line(counted):
    out = counted()

    loop = asyncio.new_event_loop()

    def start_then_stop() -> None:
        request_line("REQUEST START", batch=True)
        loop.stop()  # the loop ends with this turn, long before the log's timer

    loop.call_soon(start_then_stop)
    loop.run_forever()
    loop.close()
    assert out.getvalue() == ""
    logging.getLogger().handlers[0].flush()  # what logging.shutdown does at exit
    assert out.getvalue().rstrip().endswith("REQUEST START")


def test_a_broken_stream_never_fails_the_code_that_logs(counted, monkeypatch):
    out = counted()

    async def start() -> None:
        request_line("REQUEST START", batch=True)

    asyncio.run(start())

    def broken(text: str) -> int:
        raise BrokenPipeError("the log's reader went away")

    monkeypatch.setattr(out, "write", broken)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # as in production: logging reports nothing
    logging.getLogger("pixyproxy.somewhere").warning("after the reader went away")
    logging.getLogger().handlers[0].flush()

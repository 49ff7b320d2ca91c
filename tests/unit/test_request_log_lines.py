"""The request lines written the short way (logging_setup.DirectLines) are the lines logging writes."""

import io
import logging
import re
import sys

import pytest

from pixyproxy.entrypoints import request_context
from pixyproxy.entrypoints.logging_setup import configure_logging
from pixyproxy.entrypoints.request_context import _info, request_id_var

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ")


@pytest.fixture
def stream(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level, request_context.line_writer
    saved_flags = logging.logMultiprocessing, logging.logProcesses
    out = io.StringIO()

    def start() -> io.StringIO:
        """Configure logging onto `out`; in the test, not at set-up: pytest swaps stderr and adds its
        capture handlers to the root logger after set-up."""
        monkeypatch.setattr(sys, "stderr", out)
        configure_logging("INFO")
        return out

    yield start
    root.handlers[:], level, request_context.line_writer = saved
    root.setLevel(level)
    logging.logMultiprocessing, logging.logProcesses = saved_flags


def test_direct_lines_equal_logging_lines(stream):
    stream = stream()
    writer = request_context.line_writer
    assert writer is not None and writer._applies()
    token = request_id_var.set("host-20260101000000000000-1-7")
    try:
        for use_writer in (True, False):
            request_context.line_writer = writer if use_writer else None
            _info("REQUEST START")
            _info("REQUEST END %s %s %d %.1fms", "GET", "/image/x", 404, 1.25)
    finally:
        request_id_var.reset(token)
        request_context.line_writer = writer
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


def test_the_line_number_is_the_callers(stream):
    stream = stream()
    _info("REQUEST START")
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
        _info("REQUEST END %s %s %d %.1fms", "GET", "/x", 200, 0.5)
    finally:
        logging.getLogger().removeHandler(capture)
    assert [r.getMessage() for r in seen] == ["REQUEST END GET /x 200 0.5ms"]
    assert stream.getvalue().rstrip().endswith("REQUEST END GET /x 200 0.5ms")  # and the stream still has it


def test_a_level_above_info_silences_both_ways(stream):
    stream = stream()
    logging.getLogger().setLevel(logging.WARNING)
    _info("REQUEST START")
    assert stream.getvalue() == ""

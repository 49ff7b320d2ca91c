"""The one log format: `YYYY-MM-DD HH:MM:SS,mmm LEVEL request-id [thread-id] [function:line] message`."""

import asyncio
import contextlib
import logging
import sys
import threading
import time

from pixyproxy.entrypoints.request_id import request_id_var

LOG_FORMAT = "%(asctime)s %(levelname)s %(request_id)s [%(thread)d] [%(funcName)s:%(lineno)d] %(message)s"


class LogFormatter(logging.Formatter):
    """The date and time formatted once per second rather than once per line (2 of a line's ~10 us)."""

    _cached: tuple[int, str] = (-1, "")  # (second, its text), replaced whole: safe across threads

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        second = int(created)
        cached_second, text = self._cached
        if second != cached_second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._cached = (second, text)
        return (self.default_msec_format or "%s,%03d") % (text, int((created - second) * 1000))


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class LogHandler(logging.StreamHandler):
    """The service's one handler. It can also take an INFO line whole, formatted as LOG_FORMAT formats a
    record: the two lines every request logs skip logging's per-record work (a record, filters, the
    formatter), which was a quarter of a detail read. `direct_for` says when that gives the same result.

    A line taken with `batch=True` (a REQUEST START) waits until the next line is written, or at most
    `batch_seconds`: a request answered at once then costs one write for its two lines, and a long one's
    START is still written while it runs. One timer per wait rather than a callback per line, so a busy
    loop pays for it once per `batch_seconds`. Lines keep their order: whatever is written takes the
    waiting lines with it, and `flush` (called by logging at exit) writes them."""

    batch_seconds = 0.05

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.formatter = LogFormatter(LOG_FORMAT)
        self.addFilter(RequestIdFilter())
        self._waiting: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop whose timer writes them

    @staticmethod
    def direct_for(logger: logging.Logger) -> "LogHandler | None":
        """The handler, if an INFO record of `logger` would reach it alone, unfiltered, as configured."""
        root = logging.root
        if len(root.handlers) != 1 or not logger.isEnabledFor(logging.INFO) or logger.filters:
            return None
        handler = root.handlers[0]
        if type(handler) is not LogHandler or handler.level > logging.INFO or len(handler.filters) != 1:
            return None
        current: logging.Logger | None = logger
        while current is not root and current is not None:
            if current.handlers or not current.propagate:
                return None
            current = current.parent
        return handler

    def write_info(self, message: str, function: str, line: int, *, batch: bool = False) -> None:
        """batch: only on a running event loop's thread."""
        stamp = self.formatter.stamp(time.time())  # type: ignore[union-attr]
        text = (
            f"{stamp} INFO {request_id_var.get()} [{threading.get_ident()}] [{function}:{line}] {message}\n"
        )
        with self.lock:  # type: ignore[union-attr]
            self._waiting.append(text)
            if not batch:
                self._write_waiting()
                return
            loop = asyncio.get_running_loop()
            if self._flush_on is not loop:  # a loop that ended before its timer left its lines here too
                self._flush_on = loop
                loop.call_later(self.batch_seconds, self.flush)

    def _write_waiting(self) -> None:
        """With the lock held."""
        if self._waiting:
            lines = "".join(self._waiting)
            self._waiting.clear()
            self.stream.write(lines)
            self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write_waiting()
            except Exception:  # as logging does: a broken stream never fails the code that logs
                self.handleError(record)
            super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_on = None
            with contextlib.suppress(Exception):  # on the loop's timer, or at exit: nobody to tell
                self._write_waiting()
            super().flush()


def configure_logging(level: str = "INFO") -> None:
    # The format names neither process nor processName: skip looking them up for every record.
    logging.logMultiprocessing = False
    logging.logProcesses = False
    root = logging.getLogger()
    root.handlers[:] = [LogHandler()]
    root.setLevel(level.upper())
    # Our REQUEST END line replaces uvicorn's access log; uvicorn's own messages keep our format.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

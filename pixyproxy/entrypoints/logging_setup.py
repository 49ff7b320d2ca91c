"""The one log format: `YYYY-MM-DD HH:MM:SS,mmm LEVEL request-id [thread-id] [function:line] message`."""

import logging
import sys
import threading
import time

from pixyproxy.entrypoints import request_context
from pixyproxy.entrypoints.request_context import RequestIdFilter, request_id_var

LOG_FORMAT = "%(asctime)s %(levelname)s %(request_id)s [%(thread)d] [%(funcName)s:%(lineno)d] %(message)s"


class LogFormatter(logging.Formatter):
    """logging.Formatter with the date and time formatted once per second, not once per line."""

    _cached: tuple[int, str] = (-1, "")  # (second, its text), replaced whole: safe across threads

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        return self.stamp(int(record.created), int(record.msecs))

    def stamp(self, second: int, millis: int) -> str:
        """`YYYY-MM-DD HH:MM:SS,mmm` for a time given as whole seconds since the epoch and milliseconds."""
        cached_second, text = self._cached
        if second != cached_second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._cached = (second, text)
        return self.default_msec_format % (text, millis)


class DirectLines:
    """Writes the request lines (request_context._info) straight to `handler`'s stream, formatted as
    LOG_FORMAT formats them, while `handler` is the only one a record from `logger` would reach.

    logging's generic path (a LogRecord, its attributes, the formatter, the filter) is most of the cost
    of a small request; the two lines per request are the contract, so they get the short way. Otherwise
    (a test's capture handler, a filter, another level) it returns False and logging does it all.
    """

    def __init__(self, handler: logging.StreamHandler, logger: logging.Logger, formatter: LogFormatter):
        self.handler, self.logger, self.formatter = handler, logger, formatter
        self.root = logging.getLogger()

    def _applies(self) -> bool:
        handler, logger = self.handler, self.logger
        if (
            handler.formatter is not self.formatter
            or handler.level > logging.INFO
            or len(handler.filters) != 1
        ):
            return False
        if not logger.isEnabledFor(logging.INFO) or logger.disabled or logger.filters:
            return False
        current: logging.Logger | None = logger
        while current is not None and current is not self.root:
            if current.handlers or not current.propagate:
                return False
            current = current.parent
        return current is self.root and self.root.handlers == [handler]

    def __call__(self, message: str, args: tuple, function: str, line: int) -> bool:
        if not self._applies():
            return False
        stamp = self.formatter.stamp(*divmod(time.time_ns() // 1_000_000, 1000))
        text = f"{stamp} INFO {request_id_var.get()} [{threading.get_ident()}] [{function}:{line}] "
        text += (message % args if args else message) + self.handler.terminator
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.stream.flush()
        except Exception:
            return False  # let logging try, and report the failure its way
        finally:
            handler.release()
        return True


def configure_logging(level: str = "INFO") -> None:
    # The format names neither process nor processName: skip looking them up for every record.
    logging.logMultiprocessing = False
    logging.logProcesses = False
    handler = logging.StreamHandler(sys.stderr)
    formatter = LogFormatter(LOG_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    request_context.line_writer = DirectLines(handler, request_context.log, formatter)
    # Our REQUEST END line replaces uvicorn's access log; uvicorn's own messages keep our format.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

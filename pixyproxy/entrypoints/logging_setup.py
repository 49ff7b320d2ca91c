"""The one log format: `YYYY-MM-DD HH:MM:SS,mmm LEVEL request-id [thread-id] [function:line] message`."""

import logging
import sys
import time

from pixyproxy.entrypoints.request_context import RequestIdFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(request_id)s [%(thread)d] [%(funcName)s:%(lineno)d] %(message)s"


class LogFormatter(logging.Formatter):
    """logging.Formatter with the date and time formatted once per second, not once per line."""

    _cached: tuple[int, str] = (-1, "")  # (second, its text), replaced whole: safe across threads

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, stamp = self._cached
        if second != cached_second:
            stamp = time.strftime(self.default_time_format, self.converter(second))
            self._cached = (second, stamp)
        return self.default_msec_format % (stamp, record.msecs)


def configure_logging(level: str = "INFO") -> None:
    # The format names neither process nor processName: skip looking them up for every record.
    logging.logMultiprocessing = False
    logging.logProcesses = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our REQUEST END line replaces uvicorn's access log; uvicorn's own messages keep our format.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

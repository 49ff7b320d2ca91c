"""The one log format: `YYYY-MM-DD HH:MM:SS,mmm LEVEL request-id [thread-id] [function:line] message`."""

import logging
import sys

from pixyproxy.entrypoints.request_context import RequestIdFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(request_id)s [%(thread)d] [%(funcName)s:%(lineno)d] %(message)s"


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our REQUEST END line replaces uvicorn's access log; uvicorn's own messages keep our format.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True

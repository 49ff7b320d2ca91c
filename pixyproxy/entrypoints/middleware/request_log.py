"""The request log's lines (REQUEST START and REQUEST END, written by the request boundary), straight to
the service's handler when that is where the record would go alone."""

import logging
import sys

from pixyproxy.entrypoints.logging_setup import LogHandler

log = logging.getLogger("pixyproxy.request")


def request_line(message: str, *args: object, batch: bool = False) -> None:
    """log.info(message, *args) as from the caller; straight to the service's handler when that is
    where the record would go alone (see LogHandler, and its `batch`)."""
    handler = LogHandler.direct_for(log)
    if handler is None:
        log.info(message, *args, stacklevel=2)
        return
    caller = sys._getframe(1)  # what logging's findCaller reads, one frame up
    text = message % args if args else message
    handler.write_info(text, caller.f_code.co_name, caller.f_lineno, batch=batch)

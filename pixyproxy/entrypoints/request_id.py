"""The current request's id: set by the request-log middleware, read by logging and the error renderer."""

import itertools
import socket
import threading
import time
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_HOST = socket.gethostname().split(".")[0] or "host"
_sequence = itertools.count(1)  # next() on a count is atomic under the GIL


def new_request_id() -> str:
    """`host-YYYYMMDDHHMMSSffffff-threadid-n`: readable, and the counter makes it unique."""
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(second))
    return f"{_HOST}-{stamp}{micros:06d}-{threading.get_ident()}-{next(_sequence)}"

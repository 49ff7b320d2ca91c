"""The current request's id: set by the request-log middleware, read by logging and the error renderer."""

import itertools
import os
import socket
import threading
import time
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_HOST = socket.gethostname().split(".")[0] or "host"
_sequence = itertools.count(1)  # next() on a count is atomic under the GIL
# Workers of `serve --workers N` are processes of their own: the id names the process, so two workers'
# ids never collide (each has its own counter, and thread ids may repeat across processes).
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


# The second's formatted stamp, remade only when the second changes: strftime on every request costs
# more than the rest of the id. A tuple so a reader in another thread sees one consistent pair.
_stamp: tuple[int, str] = (-1, "")


def _second_stamp(second: int) -> str:
    global _stamp
    cached_second, stamp = _stamp
    if cached_second != second:
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(second))
        _stamp = (second, stamp)
    return stamp


def new_request_id() -> str:
    """`host-YYYYMMDDHHMMSSffffff-pid-threadid-n`: readable, and the counter makes it unique."""
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_HOST}-{_second_stamp(second)}{micros:06d}-{_pid}-{threading.get_ident()}-{next(_sequence)}"

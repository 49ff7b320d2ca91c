"""Request ids and the REQUEST START / REQUEST END log lines, for every request.

A pure ASGI middleware rather than a route dependency: a dependency never runs for an unknown route, a
refused body or an error raised before routing, and every one of those must log both lines too.
"""

import itertools
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
log = logging.getLogger("pixyproxy.request")

_HOST = socket.gethostname().split(".")[0] or "host"
_sequence = itertools.count(1)  # next() on a count is atomic under the GIL


_second_text: tuple[int, str] = (-1, "")  # local time to the second, formatted once per second


def new_request_id() -> str:
    """`host-YYYYMMDDHHMMSSffffff-threadid-n`: readable, and the counter makes it unique."""
    global _second_text
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached, text = _second_text
    if second != cached:
        text = time.strftime("%Y%m%d%H%M%S", time.localtime(second))
        _second_text = (second, text)
    return f"{_HOST}-{text}{micros:06d}-{threading.get_ident()}-{next(_sequence)}"


# Set by logging_setup.configure_logging(): writes one of the two request lines itself, the same line the
# logging path would write, and returns False when that path must run (another handler or filter is there).
LineWriter = Callable[[str, tuple, str, int], bool]
line_writer: LineWriter | None = None


def _info(message: str, *args) -> None:
    """log.info() for the two lines logged for every request, at a fraction of its cost.

    Same line as log.info(): same function and line of the caller, without logging's stack walk for it.
    """
    caller = sys._getframe(1)
    code = caller.f_code
    writer = line_writer
    if writer is not None and writer(message, args, code.co_name, caller.f_lineno):
        return
    if log.isEnabledFor(logging.INFO):
        log.handle(log.makeRecord(log.name, logging.INFO, code.co_filename, caller.f_lineno, message, args,
                                  None, code.co_name))  # fmt: skip


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


ErrorRenderer = Callable[[Exception], tuple[int, list[tuple[bytes, bytes]], bytes]]


class RequestContextMiddleware:
    def __init__(self, app, render_unexpected: ErrorRenderer) -> None:
        self.app = app
        self.render_unexpected = render_unexpected

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state = {"status": 500, "started": False}
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        _info("REQUEST START")
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the last line of defence: JSON, never a traceback, to the client
            log.exception("unhandled error while serving %s %s", scope["method"], scope["path"])
            if not state["started"]:
                status, headers, body = self.render_unexpected(exc)
                await send_with_id({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        finally:
            _info(
                "REQUEST END %s %s %d %.1fms",
                scope["method"],
                scope["path"],
                state["status"],
                (time.perf_counter() - started) * 1000,
            )
            request_id_var.reset(token)

"""Request ids and the REQUEST START / REQUEST END log lines, for every request.

A pure ASGI middleware rather than a route dependency: a dependency never runs for an unknown route, a
refused body or an error raised before routing, and every one of those must log both lines too.
"""

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
log = logging.getLogger("pixyproxy.request")

_HOST = socket.gethostname().split(".")[0] or "host"
_sequence = itertools.count(1)  # next() on a count is atomic under the GIL


def new_request_id() -> str:
    """`host-YYYYMMDDHHMMSSffffff-threadid-n`: readable, and the counter makes it unique."""
    stamp = datetime.now().strftime("%Y%m%d%H%M%S%f")
    return f"{_HOST}-{stamp}-{threading.get_ident()}-{next(_sequence)}"


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

        log.info("REQUEST START")
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the last line of defence: JSON, never a traceback, to the client
            log.exception("unhandled error while serving %s %s", scope["method"], scope["path"])
            if not state["started"]:
                status, headers, body = self.render_unexpected(exc)
                await send_with_id({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info(
                "REQUEST END %s %s %d %.1fms",
                scope["method"],
                scope["path"],
                state["status"],
                (time.perf_counter() - started) * 1000,
            )
            request_id_var.reset(token)

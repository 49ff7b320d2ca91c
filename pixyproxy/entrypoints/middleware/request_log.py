"""A request id and the two log lines, REQUEST START and REQUEST END, for every request.

Pure ASGI rather than a route dependency: a dependency never runs for an unknown route or a refused
body, and those must log both lines too.
"""

import logging
import sys
import time

from pixyproxy.domain.generation_note import generation_note
from pixyproxy.entrypoints.logging_setup import LogHandler
from pixyproxy.entrypoints.request_id import new_request_id, request_id_var

log = logging.getLogger("pixyproxy.request")


def request_line(message: str, *args: object) -> None:
    """log.info(message, *args) as from the caller; straight to the service's handler when that is
    where the record would go alone (see LogHandler)."""
    handler = LogHandler.direct_for(log)
    if handler is None:
        log.info(message, *args, stacklevel=2)
        return
    caller = sys._getframe(1)  # what logging's findCaller reads, one frame up
    handler.write_info(message % args if args else message, caller.f_code.co_name, caller.f_lineno)


class RequestLogMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the log says when the app ends without answering
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        note: dict[str, str] = {}
        note_token = generation_note.set(note)
        request_line("REQUEST START")
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if note:  # a generation: which provider answered last, and how it ended
                request_line(
                    "REQUEST END %s %s %d %.1fms provider=%s outcome=%s",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed_ms,
                    note["provider"],
                    note["outcome"],
                )
            else:
                request_line(
                    "REQUEST END %s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms
                )
            generation_note.reset(note_token)
            request_id_var.reset(token)

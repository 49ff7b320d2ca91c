"""The outermost layer: every request's id, its two log lines (REQUEST START, REQUEST END) and its
metrics (count and time by method, route template and status), in one pure ASGI layer with one wrapped
`send`.

Pure ASGI rather than a route dependency: a dependency never runs for an unknown route or a refused
body, and those must log both lines and be counted too. Label values are bounded: templates
(`/image/{guid}`), never raw paths; `<unmatched>` for no route; `OTHER` for unusual methods.
"""

import time

from pixyproxy.domain.generation_note import generation_note
from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.entrypoints.middleware.request_log import request_line
from pixyproxy.entrypoints.request_id import new_request_id, request_id_var
from pixyproxy.entrypoints.route_match import RouteTable, template

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestBoundary:
    def __init__(self, app, recorder: MetricsRecorder, routes: RouteTable) -> None:
        self.app = app
        self.recorder = recorder
        self.routes = routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        status = 500  # what the log and the metrics say when the app ends without answering
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        note: dict[str, str] = {}
        note_token = generation_note.set(note)
        # START may wait for this request's END (or the loop's next turn): one write for both lines.
        request_line("REQUEST START", batch=True)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            if note:  # a generation: which provider answered last, and how it ended
                request_line(
                    "REQUEST END %s %s %d %.1fms provider=%s outcome=%s",
                    method,
                    scope["path"],
                    status,
                    elapsed * 1000,
                    note["provider"],
                    note["outcome"],
                )
            else:
                request_line("REQUEST END %s %s %d %.1fms", method, scope["path"], status, elapsed * 1000)
            label = template(self.routes.route_for(scope))
            self.recorder.observe_request(method if method in METHODS else "OTHER", label, status, elapsed)
            generation_note.reset(note_token)
            request_id_var.reset(token)

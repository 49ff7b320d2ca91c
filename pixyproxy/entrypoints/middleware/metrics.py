"""Counts and times every HTTP request by method, route template and status.

Outermost, so requests refused before routing (401, 413, 429) are counted too. Label values are bounded:
templates (`/image/{guid}`), never raw paths; `<unmatched>` for no route; `OTHER` for unusual methods.
"""

import time

from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.entrypoints.route_match import RouteTable, template

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    def __init__(self, app, recorder: MetricsRecorder, routes: RouteTable) -> None:
        self.app = app
        self.recorder = recorder
        self.routes = routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            label = template(self.routes.route_for(scope))
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.recorder.observe_request(method, label, status, time.perf_counter() - started)

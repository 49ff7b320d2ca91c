"""Answers whatever the middleware inside it raises with the one error renderer.

Routes' errors are answered by the app's exception handlers (the same renderer) before they get here; what
arrives is a refusal raised by middleware (API key, rate limit, body limit) or a bug.
"""

import logging

from pixyproxy.entrypoints.errors import error_response

log = logging.getLogger(__name__)


class ErrorMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late for an error answer: the client sees a cut response
                log.exception("error after the response started: %s %s", scope["method"], scope["path"])
                return
            await error_response(exc, scope["path"])(scope, receive, send)

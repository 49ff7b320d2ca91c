"""The request guard, one pure ASGI layer: the admission checks (API keys, then the rate limit, each
installed only when configured), the body's size and encoding as it arrives, and the one error answer
for whatever is refused or raised here.

Routes' errors are answered by the app's exception handlers (the same renderer) before they get here;
what arrives is a refusal (a key, the rate limit, the body) or a bug. It sits inside CORS, so CORS
headers reach refusals too.
"""

import logging
from typing import Protocol

from pixyproxy.entrypoints.errors import error_response
from pixyproxy.entrypoints.middleware.body_checks import checked_receive

log = logging.getLogger(__name__)


class AdmissionCheck(Protocol):
    async def admit(self, scope) -> None:
        """Refuse the request (raise) or let it in, leaving what it learnt in the scope."""


class RequestGuard:
    def __init__(
        self,
        app,
        max_bytes: int,
        larger: dict[str, int] | None = None,
        checks: list[AdmissionCheck] | None = None,
    ) -> None:
        """larger: paths that take bigger bodies (uploads) and their own limits."""
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}
        self.checks = checks or []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message) -> None:
            nonlocal started
            started = True  # the first message is always the response's start
            await send(message)

        try:
            for check in self.checks:
                await check.admit(scope)
            limit = self.larger.get(scope["path"], self.max_bytes)
            await self.app(scope, checked_receive(scope, receive, limit), watch)
        except Exception as exc:
            if started:  # too late for an error answer: the client sees a cut response
                log.exception("error after the response started: %s %s", scope["method"], scope["path"])
                return
            await error_response(exc, scope["path"])(scope, receive, send)

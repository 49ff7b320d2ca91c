"""Refuse request bodies over the configured size before they are read into memory."""

from starlette.exceptions import HTTPException

TOO_LARGE = "the request body is larger than {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = TOO_LARGE.format(limit=self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    raise HTTPException(413, message)
                break
        seen = 0

        async def counted_receive():
            nonlocal seen
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > self.max_bytes:  # a chunked body that grows past the limit
                raise HTTPException(413, message)
            return event

        await self.app(scope, counted_receive, send)

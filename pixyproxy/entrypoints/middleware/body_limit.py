"""Refuses request bodies over the configured size before they are read into memory (413)."""

from pixyproxy.domain.errors import PayloadTooLarge

TOO_LARGE = "the request body is larger than {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        """larger: paths that take bigger bodies (uploads) and their own limits."""
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    raise PayloadTooLarge(TOO_LARGE.format(limit=limit))
                break
        seen = 0

        async def counted_receive():
            nonlocal seen
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > limit:  # a chunked body that grows past the limit
                raise PayloadTooLarge(TOO_LARGE.format(limit=limit))
            return event

        await self.app(scope, counted_receive, send)

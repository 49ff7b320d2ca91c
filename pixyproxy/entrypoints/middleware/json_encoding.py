"""JSON bodies in UTF-8 only (RFC 8259): Python's json.loads() of bytes guesses UTF-16 and UTF-32 too, so
a body in those would be read; here it is refused (422) as it arrives, before any parsing.

A UTF-8 JSON text never holds a NUL byte (a NUL inside a string must be escaped), and UTF-16 and UTF-32
bodies always do (JSON starts with an ASCII character) unless they open with a UTF-16 byte order mark.
"""

from pixyproxy.domain.errors import InvalidImageRequest

NOT_UTF8 = "the body is not valid JSON: it must be UTF-8 encoded JSON, sent as application/json"
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            subtype = value.split(b";", 1)[0].strip().lower()
            return subtype == b"application/json" or subtype.endswith(b"+json")
    return False


class JsonEncodingMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_json(scope["headers"]):
            await self.app(scope, receive, send)
            return
        first = True

        async def checked_receive():
            nonlocal first
            event = await receive()
            body = event.get("body", b"")
            if b"\x00" in body or (first and body.startswith(_UTF16_MARKS)):
                raise InvalidImageRequest(NOT_UTF8)
            first = first and not body
            return event

        await self.app(scope, checked_receive, send)

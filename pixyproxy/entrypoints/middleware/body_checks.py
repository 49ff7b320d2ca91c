"""A request body's checks as it arrives, before it is read into memory: its size (413; a declared
Content-Length at once, a chunked body as it grows) and, for JSON, UTF-8 only (422).

JSON bodies in UTF-8 only (RFC 8259): Python's json.loads() of bytes guesses UTF-16 and UTF-32 too, so
a body in those would be read; here it is refused as it arrives, before any parsing. A UTF-8 JSON text
never holds a NUL byte (a NUL inside a string must be escaped), and UTF-16 and UTF-32 bodies always do
(JSON starts with an ASCII character) unless they open with a UTF-16 byte order mark.
"""

from pixyproxy.domain.errors import InvalidImageRequest, PayloadTooLarge

TOO_LARGE = "the request body is larger than {limit} bytes"
NOT_UTF8 = "the body is not valid JSON: it must be UTF-8 encoded JSON, sent as application/json"
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _is_json(content_type: bytes) -> bool:
    subtype = content_type.split(b";", 1)[0].strip().lower()
    return subtype == b"application/json" or subtype.endswith(b"+json")


def checked_receive(scope, receive, limit: int):
    """`receive`, refusing a body over `limit` bytes and a JSON POST body that is not UTF-8; a declared
    Content-Length over the limit is refused here, before anything is read."""
    length = content_type = None
    for name, value in scope["headers"]:  # the first of each counts
        if name == b"content-length" and length is None:
            length = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise PayloadTooLarge(TOO_LARGE.format(limit=limit))
    json_post = scope["method"] == "POST" and content_type is not None and _is_json(content_type)
    seen = 0
    first = True

    async def checked():
        nonlocal seen, first
        event = await receive()
        body = event.get("body", b"")
        seen += len(body)
        if seen > limit:  # a chunked body that grows past the limit
            raise PayloadTooLarge(TOO_LARGE.format(limit=limit))
        if json_post and (b"\x00" in body or (first and body.startswith(_UTF16_MARKS))):
            raise InvalidImageRequest(NOT_UTF8)
        first = first and not body
        return event

    return checked

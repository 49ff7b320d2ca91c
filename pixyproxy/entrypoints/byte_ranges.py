"""`Range: bytes=...` parsing (RFC 9110), single ranges only; anything else is served whole."""

import re

from starlette.exceptions import HTTPException

from pixyproxy.domain.models import ContentRange

_SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")
# No stored image comes near 10**18 bytes, so a longer number means "beyond the end" whatever its value;
# it is never converted (Python refuses int() of more than 4,300 digits, and it would cost time).
_MAX_DIGITS = 18
_BEYOND_ANY_SIZE = 10**_MAX_DIGITS


def _position(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    return _BEYOND_ANY_SIZE if len(significant) > _MAX_DIGITS else int(significant)


def parse_range(header: str | None, size: int) -> ContentRange | None:
    """The range to send, None for the whole body; HTTP 416 when it lies outside the content."""
    if not header:
        return None
    match = _SINGLE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # multiple or malformed ranges: ignoring Range is allowed, send it all
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = _position(last)
        if length == 0:
            raise _unsatisfiable(size)
        return ContentRange(max(0, size - length), size - 1)
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or (last and _position(last) < start):
        raise _unsatisfiable(size)
    return ContentRange(start, end)


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(
        416, "the requested range is outside the image", headers={"Content-Range": f"bytes */{size}"}
    )

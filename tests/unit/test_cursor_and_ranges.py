from datetime import UTC, datetime

import pytest
from starlette.exceptions import HTTPException

from pixyproxy.domain.cursor import decode_cursor, encode_cursor
from pixyproxy.domain.errors import InvalidCursor
from pixyproxy.domain.models import PagePosition
from pixyproxy.entrypoints.byte_ranges import parse_range


def test_cursor_round_trips():
    position = PagePosition(created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), id=42)
    assert decode_cursor(encode_cursor(position)) == position


def test_cursor_without_timezone_is_refused():
    import base64

    naive = base64.urlsafe_b64encode(b"2026-01-02T03:04:05|1").decode()
    with pytest.raises(InvalidCursor):
        decode_cursor(naive)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=95-500", (95, 99)),
        ("bytes=0-1,5-6", None),  # multiple ranges: served whole
        ("items=0-1", None),
        ("bytes=-" + "9" * 5000, (0, 99)),  # a suffix longer than the body: all of it
        ("bytes=0-" + "9" * 5000, (0, 99)),  # an end beyond the body: up to its end
        ("bytes=000000000000000000000000000000005-9", (5, 9)),  # leading zeros are still the number
    ],
)
def test_parse_range(header, expected):
    parsed = parse_range(header, 100)
    assert ((parsed.start, parsed.end) if parsed else None) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=200-300",
        "bytes=-0",
        "bytes=9-3",
        "bytes=" + "9" * 5000 + "-",
        "bytes=-" + "0" * 5000,
    ],
)
def test_unsatisfiable_range_is_416(header):
    with pytest.raises(HTTPException) as caught:
        parse_range(header, 100)
    assert caught.value.status_code == 416
    assert caught.value.headers == {"Content-Range": "bytes */100"}

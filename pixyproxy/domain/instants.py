"""RFC 3339 instants from a client's query (search windows, usage periods), parsed in one place."""

import re
from datetime import UTC, datetime

from pixyproxy.domain.errors import InvalidImageRequest

# RFC 3339 date-time with a zone, or (where a date is allowed) a plain date: its 00:00 UTC.
DATE_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2}))?$"
_DATE_TIME = re.compile(DATE_TIME_PATTERN)
_INSTANT = re.compile(INSTANT_PATTERN)


def parse_instant(name: str, value: str, *, dates: bool = False) -> datetime:
    """`value` as a UTC datetime; InvalidImageRequest (422) naming query parameter `name` otherwise."""
    if dates and not _INSTANT.match(value):
        raise InvalidImageRequest(f"query.{name}: a date (2026-11-24) or an RFC 3339 date-time with a zone")
    if not dates and not _DATE_TIME.match(value):
        raise InvalidImageRequest(
            f"query.{name}: an RFC 3339 date-time with a zone, e.g. 2026-11-24T12:00:00Z"
        )
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        what = "date" if dates else "date-time"
        raise InvalidImageRequest(f"query.{name}: not a real {what} ({exc})") from exc

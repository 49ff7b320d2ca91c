"""Opaque list cursors: a page position encoded so clients pass it back untouched."""

import base64
import binascii
from datetime import UTC, datetime

from pixyproxy.domain.errors import InvalidCursor
from pixyproxy.domain.models import PagePosition

MAX_CURSOR_LENGTH = 200
MAX_ROW_ID = 2**63 - 1  # the largest SQL BIGINT: a larger id cannot be bound as a parameter


def encode_cursor(position: PagePosition) -> str:
    raw = f"{position.created_at.isoformat()}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PagePosition:
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is not None:
            created_at.astimezone(UTC)  # a stamp at the edge of the calendar cannot be stored or compared
        position = PagePosition(created_at=created_at, id=int(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidCursor() from exc
    if created_at.tzinfo is None or not 0 <= position.id <= MAX_ROW_ID:
        raise InvalidCursor()
    return position

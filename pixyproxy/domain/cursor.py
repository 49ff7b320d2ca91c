"""Opaque list cursors: a page position encoded so clients pass it back untouched."""

import base64
import binascii
from datetime import datetime

from pixyproxy.domain.errors import InvalidCursor
from pixyproxy.domain.models import PagePosition

MAX_CURSOR_LENGTH = 200


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
        position = PagePosition(created_at=created_at, id=int(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if created_at.tzinfo is None or position.id < 0:
        raise InvalidCursor()
    return position

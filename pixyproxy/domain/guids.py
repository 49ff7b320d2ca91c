"""One spelling per guid: 8-4-4-4-12 hex digits (ASCII, either case as RFC 9562 reads them on input).

Python's UUID() also takes braces, `urn:uuid:`, no dashes and non-ASCII digits (full-width ones); each of
those would be a second address for one image, so anything but the canonical form names nothing.
"""

import re
from typing import Annotated
from uuid import UUID

from pydantic import BeforeValidator

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def canonical_uuid(text: str) -> UUID | None:
    """The UUID `text` spells in the canonical form, or None for any other text."""
    if len(text) != 36 or not _CANONICAL.fullmatch(text):
        return None
    return UUID(text)


def _canonical_text(value: object) -> object:
    if isinstance(value, str) and canonical_uuid(value) is None:
        raise ValueError("must be a guid written as 8-4-4-4-12 hex digits")
    return value


# A UUID field of a request body that takes the canonical spelling only (a 422 for any other).
CanonicalGuid = Annotated[UUID, BeforeValidator(_canonical_text)]

"""List and search images, newest first, a page at a time: a user key its own, an admin every key's."""

from dataclasses import replace

from pixyproxy.domain.cursor import decode_cursor, encode_cursor
from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import Caller, ImageDetail
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.search import NO_FILTER, ImageFilter
from pixyproxy.domain.tenancy import owner_filter

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidImageRequest(f"limit: must be between 1 and {MAX_LIST_LIMIT}")


class ListImages:
    def __init__(self, repository: ImageRepository) -> None:
        self.repository = repository

    async def __call__(
        self,
        caller: Caller | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        cursor: str | None = None,
        filters: ImageFilter = NO_FILTER,
    ) -> tuple[list[ImageDetail], str | None]:
        """A page, and the cursor of the next one (None on the last)."""
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        owner = owner_filter(caller)
        if owner is not None:
            filters = replace(filters, owner=owner)
        if filters.empty:  # the unfiltered list keeps its own plain statement
            page = await self.repository.list_page(limit, after)
        else:
            page = await self.repository.list_page(limit, after, filters)
        return page.items, encode_cursor(page.next) if page.next else None

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from uuid import UUID

from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition
from pixyproxy.domain.search import ImageFilter
from pixyproxy.domain.usage import UsageEntry, UsageTotal


class ImageRepository(Protocol):
    """Image metadata (the `images` table).

    Every method raises MetadataUnavailable when the store cannot be reached.
    """

    name: str  # e.g. "sqlite", "mysql"; logged at start (never a secret)

    async def init(self) -> None:
        """Create or migrate the schema; idempotent, never drops data."""
        ...

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        """Insert one image. A second image with the same idempotency_key raises IdempotencyConflict."""
        ...

    async def get(self, guid: UUID, owner: str | None = None) -> ImageDetail | None:
        """The image; with `owner` (a user key's caller), only when it is that owner's: the owner is part
        of the lookup itself, so another tenant's guid costs what an unknown one does."""
        ...

    async def settled(self, guid: UUID) -> ImageDetail | None:
        """The image as it stands once any write in flight on its row has ended (a locking read: it waits
        for a write, maybe on another connection, whose COMMIT went unanswered). What a write of unknown
        outcome did; a plain read could run before that COMMIT lands."""
        ...

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None: ...

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        """Free an expired key: clear idempotency_key and request_hash on the row holding `key`, only
        if that row's created_at is before `older_than` (one atomic statement). The image row stays.
        A fresh key, or a key no row holds, is left as it is."""
        ...

    async def list_page(
        self, limit: int, after: PagePosition | None = None, filters: ImageFilter | None = None
    ) -> ImagePage:
        """Newest first (created_at desc, id desc), strictly after `after`; `next` set when more remain.
        `filters` narrows the list (domain/search.py says what each field means)."""
        ...

    async def delete(self, guid: UUID) -> bool:
        """Remove the image's row; False when there was none (already deleted, never stored)."""
        ...

    async def created_before(self, cutoff: datetime, limit: int) -> list[ImageDetail]:
        """Up to `limit` images created before `cutoff`, oldest first (retention deletes them)."""
        ...

    async def record_usage(self, entry: UsageEntry) -> None:
        """Keep one provider call's usage (a row of its own: deleting images leaves it)."""
        ...

    async def usage_totals(
        self, since: datetime, until: datetime, owner: str | None = None
    ) -> list[UsageTotal]:
        """Totals of the usage recorded in [since, until), one per owner, model and provider (each a
        UsageTotal with its model and provider set); only `owner`'s when given."""
        ...

    async def reindex_words(self) -> int:
        """Index the words of every stored image again, adding what is missing (an image stored by an
        older version during an upgrade); safe to run any time. Returns how many images it read."""
        ...

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        """Which of these guids have a row (used by garbage collection)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

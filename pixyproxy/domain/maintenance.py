"""Keeping the stores tidy: deleting images past their retention, removing blobs no row points at and
rows whose bytes are missing.

Needs only the repository and the blob store, so `pixyproxy gc` runs without a generator or its key.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.ports.blobs import BlobStore
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.variants import all_variant_keys

log = logging.getLogger(__name__)


def guid_of(key: str) -> UUID | None:
    """The image guid a blob key names (`{guid}.png`, `.webp`, `.jpg` ...), None for a foreign key."""
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    try:
        return UUID(stem)
    except ValueError:
        return None


class GarbageCollector:
    def __init__(
        self,
        repository: ImageRepository,
        blobs: BlobStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = repository
        self.blobs = blobs
        self._clock = clock

    async def remove_expired(self, retention: timedelta, batch_size: int = 500) -> int:
        """Delete images created more than `retention` ago, rows first then bytes and variants, a batch
        at a time; returns how many. Bytes a failing store keeps are orphans for remove_orphans."""
        cutoff = self._clock() - retention
        removed = 0
        while True:
            batch = await self.repository.created_before(cutoff, batch_size)
            for detail in batch:
                if await self.repository.delete(detail.guid):
                    removed += 1
                await self.blobs.delete_many([detail.filename, *all_variant_keys(detail.guid)])
            if batch:
                log.info("gc deleted %d image(s) older than %s (%d so far)", len(batch), cutoff, removed)
            if len(batch) < batch_size:
                return removed

    async def remove_rows_without_bytes(self, grace: timedelta, page_size: int = 500) -> list[UUID]:
        """Delete rows older than `grace` whose bytes are missing (a write whose outcome was lost, bytes
        removed by hand), with any variant left: a variant is smaller than the original and cannot stand
        in for it, so nothing can repair such a row. Returns their guids."""
        cutoff = self._clock() - grace
        keys = set(await self.blobs.list_older_than(cutoff))
        broken: list[ImageDetail] = []
        after = None
        while True:
            page = await self.repository.list_page(page_size, after)
            for detail in page.items:
                # A listing can lag a write (and rows are stamped before their bytes): each is opened.
                if (
                    detail.created_at < cutoff
                    and detail.filename not in keys
                    and not await self._has_bytes(detail.filename)
                ):
                    broken.append(detail)
            if page.next is None:
                break
            after = page.next
        for detail in broken:
            await self.repository.delete(detail.guid)
            await self.blobs.delete_many(all_variant_keys(detail.guid))
            log.warning("gc removed image %s: its row was kept but its bytes were missing", detail.guid)
        if broken:
            log.info("gc removed %d row(s) whose bytes were missing", len(broken))
        return [detail.guid for detail in broken]

    async def _has_bytes(self, key: str) -> bool:
        stream = await self.blobs.open(key, 0, 0)
        if stream is None:
            return False
        await stream.aclose()
        return True

    async def remove_orphans(self, grace: timedelta) -> list[str]:
        """Delete blobs with no row that are older than `grace` (left by crashes or failed writes)."""
        keys = await self.blobs.list_older_than(self._clock() - grace)
        by_guid: dict[UUID, list[str]] = {}
        for key in keys:
            guid = guid_of(key)
            if guid is not None:  # foreign objects are left alone
                by_guid.setdefault(guid, []).append(key)
        live = await self.repository.existing(by_guid)
        removed = [key for guid, found in by_guid.items() if guid not in live for key in found]
        for key in removed:
            await self.blobs.delete(key)
        if removed:
            log.info("gc removed %d orphan blob(s)", len(removed))
        return removed

"""Delete an image: its row first (from then on every read is a 404), then its bytes and every variant.
Bytes a failed removal leaves are orphans `pixyproxy gc` removes."""

import logging
from uuid import UUID

from pixyproxy.domain.errors import ImageNotFound, MetadataOutcomeUnknown, StorageUnavailable
from pixyproxy.domain.models import Caller, ImageDetail
from pixyproxy.domain.ports.blobs import BlobStore
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.usecases.reading import ReadImage
from pixyproxy.domain.usecases.storing import OUTCOME_CHECKS, learn_outcome
from pixyproxy.domain.variants import all_variant_keys

log = logging.getLogger(__name__)


async def remove_bytes(blobs: BlobStore, detail: ImageDetail) -> None:
    """The image's bytes and every variant of it (its row is gone already)."""
    keys = [detail.filename, *all_variant_keys(detail.guid)]
    try:
        await blobs.delete_many(keys)
    except StorageUnavailable as exc:
        log.warning("image %s deleted; its bytes stay until `pixyproxy gc` removes them", detail.guid)
        raise StorageUnavailable(
            "the image is deleted, but storage could not remove its bytes now; `pixyproxy gc` will"
        ) from exc


class DeleteImage:
    def __init__(
        self,
        read: ReadImage,
        repository: ImageRepository,
        blobs: BlobStore,
        outcome_checks: tuple[float, ...] = OUTCOME_CHECKS,
    ) -> None:
        self.read = read
        self.repository = repository
        self.blobs = blobs
        self._outcome_checks = outcome_checks

    async def __call__(self, guid: str | UUID, caller: Caller | None = None) -> None:
        detail = await self.read(guid, caller)
        try:
            deleted = await self.repository.delete(detail.guid)
        except MetadataOutcomeUnknown:
            # The row's fate decides: still there, nothing was deleted (its bytes stay); gone, finish.
            stored = await learn_outcome(lambda: self.repository.settled(detail.guid), self._outcome_checks)
            if stored is not False:
                raise
            deleted = True
        if not deleted:
            raise ImageNotFound()  # another request deleted it a moment ago
        await remove_bytes(self.blobs, detail)

"""The store step every new image goes through: its bytes first, then its row, so a client is never told
of an image whose bytes are missing.

When the row's write fails, its bytes are removed, unless the outcome is unknown (the database stopped
answering after the write was sent): then the row is read back by its guid once the database answers,
and the answer follows what is true. Bytes are never removed under a row that may exist; bytes left
behind by a row that never came are orphans `pixyproxy gc` removes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import MetadataOutcomeUnknown, MetadataUnavailable
from pixyproxy.domain.image_formats import CheckedImage, check_image, sniff_format
from pixyproxy.domain.models import (
    Caller,
    GeneratedImage,
    GenerationRequest,
    IdempotentResult,
    ImageDetail,
)
from pixyproxy.domain.pixel_budget import in_decode_slot
from pixyproxy.domain.ports.blobs import BlobStore
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usecases.idempotency import Key, Remembered
from pixyproxy.domain.usecases.metering import Paid, safety_identifier_for

log = logging.getLogger(__name__)

# How often, and how far apart, a write of unknown outcome is looked up before giving up on knowing.
OUTCOME_CHECKS = (0.05, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Lineage:
    """What an edit of stored images was made from."""

    parent_guid: UUID
    mask_guid: UUID | None = None
    reference_guids: list[UUID] | None = None


@dataclass(frozen=True)
class CheckedBlob:
    """A checked image's bytes under their guid, as the blob store takes them (and as store() then adds
    the image's row for)."""

    guid: UUID
    image: CheckedImage

    @property
    def key(self) -> str:
        return f"{self.guid}.{self.image.extension}"

    @property
    def data(self) -> bytes:
        return self.image.data

    @property
    def content_type(self) -> str:
        return self.image.content_type


@dataclass(frozen=True)
class JustStored:
    """An image just stored, with its bytes as stored: an answer that carries them needs no read back."""

    detail: ImageDetail
    data: bytes


class ImageRecords:
    """The images as the idempotency policy reads them."""

    kind = "image"

    def __init__(self, repository: ImageRepository) -> None:
        self.repository = repository

    async def remembered(self, key: str) -> Remembered[ImageDetail] | None:
        found: IdempotentResult | None = await self.repository.get_by_idempotency_key(key)
        if found is None:
            return None
        return Remembered(found.detail, found.request_hash, found.detail.created_at)

    async def release(self, key: str, older_than: datetime) -> None:
        await self.repository.release_idempotency_key(key, older_than)


async def learn_outcome(
    read: Callable[[], Awaitable[object | None]], checks: tuple[float, ...] = OUTCOME_CHECKS
) -> bool | None:
    """Whether a write of unknown outcome happened (`read` answers its record, or None): True or False
    once the store answers, None when it never did."""
    for delay in checks:
        await asyncio.sleep(delay)
        try:
            return await read() is not None
        except MetadataUnavailable:
            continue
    return None


class ImageWriter:
    def __init__(
        self,
        repository: ImageRepository,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_guid: Callable[[], UUID] = uuid4,
        outcome_checks: tuple[float, ...] = OUTCOME_CHECKS,
    ) -> None:
        self.repository = repository
        self.blobs = blobs
        self._clock = clock
        self._new_guid = new_guid
        self._outcome_checks = outcome_checks

    async def store(
        self,
        request: GenerationRequest,
        paid: Paid,
        caller: Caller | None,
        key: Key | None = None,
        lineage: Lineage | None = None,
        put: CheckedBlob | None = None,
    ) -> ImageDetail:
        """The image stored: its bytes (unless `put` already holds them), then its row."""
        generated = paid.generated
        put = put or await self.put_bytes(request, generated)
        guid, checked, filename = put.guid, put.image, put.key
        try:
            detail = ImageDetail(
                guid=guid,
                prompt=request.prompt,
                filename=filename,
                created_at=self._clock(),
                content_type=checked.content_type,
                size_bytes=len(checked.data),
                width=checked.width,
                height=checked.height,
                model=generated.model,
                size=generated.size or request.size,
                quality=generated.quality or request.quality,
                revised_prompt=generated.revised_prompt,
                usage=generated.usage,
                sha256=checked.sha256,
                background=generated.background or request.background,
                output_format=checked.format,
                output_compression=request.output_compression,
                moderation=request.moderation,
                safety_identifier=safety_identifier_for(owner_of(caller)),
                owner=owner_of(caller),
                estimated_cost_usd=paid.cost,
                provider=generated.provider,
                deployment=generated.deployment,
                attempts=generated.attempts,
                parent_guid=lineage.parent_guid if lineage else None,
                mask_guid=lineage.mask_guid if lineage else None,
                reference_guids=lineage.reference_guids if lineage else None,
            )
            await self.repository.add(detail, key.stored if key else None, key.fingerprint if key else None)
        except MetadataOutcomeUnknown:
            stored = await learn_outcome(lambda: self.repository.settled(guid), self._outcome_checks)
            if stored:
                log.warning("image %s stored; the database's answer to its write was lost", guid)
                return detail
            if stored is False:
                await self.discard(filename)
            else:
                log.warning("image %s: its row may or may not be stored; its bytes stay (gc decides)", guid)
            raise
        except asyncio.CancelledError:
            # Stopped mid-write (another of n failed, a shutdown): its COMMIT may have been sent.
            log.warning("image %s: stopped while its row was written; its bytes stay (gc decides)", guid)
            raise
        except BaseException:
            await self.discard(filename)
            raise
        log.info("stored image %s (%d bytes, model %s)", guid, detail.size_bytes, detail.model)
        return detail

    async def store_keeping_bytes(
        self, request: GenerationRequest, paid: Paid, caller: Caller | None, put: CheckedBlob | None = None
    ) -> JustStored:
        """store(), and the bytes it stored."""
        put = put or await self.put_bytes(request, paid.generated)
        return JustStored(await self.store(request, paid, caller, put=put), put.data)

    async def put_bytes(self, request: GenerationRequest, generated: GeneratedImage) -> CheckedBlob:
        """The first half of store(): what a row is then added for (store's `put`)."""
        return await self._check_and_put(self._new_guid(), generated.data, request)

    async def _check_and_put(self, guid: UUID, data: bytes, request: GenerationRequest) -> CheckedBlob:
        """The bytes checked in the asked format (converted if need be), hashed and put in the store.
        A PNG kept as a PNG is verified, never decoded: its check goes with the write in one hand-off to
        a thread. Anything decoded (a conversion, a WebP, JPEG or GIF check) waits for a decode slot."""
        fmt, compression = request.format, request.output_compression

        def check() -> CheckedBlob:
            return CheckedBlob(guid, check_image(data, fmt, compression))

        if fmt == "png" and sniff_format(data) == "png":
            return await self.blobs.put_prepared(check)
        blob = await in_decode_slot(check)
        await self.blobs.put(blob.key, blob.data, blob.content_type)
        return blob

    async def discard(self, key: str) -> None:
        try:
            await self.blobs.delete(key)
        except Exception:  # gc removes it later; the original error is the one to report
            log.warning("could not remove blob %s after a failed write; gc will", key, exc_info=True)

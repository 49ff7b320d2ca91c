"""Reading images: one look-up every use case on a stored image goes through (read, serve, edit, delete),
and its content (a range of its bytes, all of them, a URL)."""

import logging
from datetime import timedelta
from typing import NoReturn
from uuid import UUID

from pixyproxy.domain.errors import ImageNotFound, InvalidImageRequest, StorageUnavailable
from pixyproxy.domain.ids import parse_guid
from pixyproxy.domain.models import Caller, ContentRange, ImageDetail, SourceImage
from pixyproxy.domain.ports.blobs import BlobStore, BlobStream
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.streams import read_whole
from pixyproxy.domain.tenancy import owner_filter, sees

log = logging.getLogger(__name__)


class ReadImage:
    """An image's details. Another key's image is not found: the owner is part of the lookup itself, so
    another tenant's guid answers as fast as an unknown one (and `sees` stays as a second guard)."""

    def __init__(self, repository: ImageRepository) -> None:
        self.repository = repository

    async def __call__(self, guid: str | UUID, caller: Caller | None = None) -> ImageDetail:
        detail = await self.repository.get(parse_guid(guid), owner_filter(caller))
        if detail is None or not sees(caller, detail.owner):
            raise ImageNotFound()
        return detail

    async def referenced(self, guid: UUID | None, where: str, caller: Caller | None) -> ImageDetail | None:
        """An image named in a request body: unknown (or another key's) is the body's fault (422), not a
        missing route."""
        if guid is None:
            return None
        detail = await self.repository.get(guid, owner_filter(caller))
        if detail is None or not sees(caller, detail.owner):
            raise InvalidImageRequest(f"{where}: no image has the guid {guid}")
        return detail


class ImageContent:
    """An image's bytes: a range of them, all of them, or a URL that serves them."""

    def __init__(self, repository: ImageRepository, blobs: BlobStore) -> None:
        self.repository = repository
        self.blobs = blobs

    async def open(self, detail: ImageDetail, byte_range: ContentRange | None = None) -> BlobStream:
        start, end = (byte_range.start, byte_range.end) if byte_range else (0, None)
        stream = await self.blobs.open(detail.filename, start, end)
        if stream is None:
            await self._missing(detail)
        return stream

    async def _missing(self, detail: ImageDetail) -> NoReturn:
        """Why an image's bytes are not in storage: deleted since its row was read (404), or lost under
        a live row (503, said loudly: that breaks the store's one promise)."""
        if await self.repository.get(detail.guid) is None:
            raise ImageNotFound()
        log.error("image %s has a row but no blob %s", detail.guid, detail.filename)
        raise StorageUnavailable("the image's bytes are missing from storage")

    async def read(self, detail: ImageDetail) -> bytes:
        return await read_whole(await self.open(detail))

    async def source(self, detail: ImageDetail) -> SourceImage:
        """A stored image as a generator takes it."""
        data = await self.read(detail)
        return SourceImage(data, detail.content_type, detail.filename, detail.width, detail.height)

    async def url(self, detail: ImageDetail, ttl: timedelta) -> str | None:
        """A presigned URL where storage makes them (S3); None otherwise."""
        return await self.blobs.presigned_url(detail.filename, ttl)

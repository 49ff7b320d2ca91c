"""Content in another size or format: the variant is found or made once (VariantMaker), then served like
the original. A variant whose original is gone says why as the original would: 404 if the image was
deleted meanwhile, 503 if its bytes are lost."""

from datetime import timedelta

from pixyproxy.domain.errors import StorageUnavailable
from pixyproxy.domain.models import ContentRange, ImageDetail
from pixyproxy.domain.ports.blobs import BlobStream
from pixyproxy.domain.usecases.reading import ImageContent
from pixyproxy.domain.variants import OriginalMissing, Variant, VariantMaker

Planned = tuple[str, int | None, str]  # variants.plan(): the variant's key, width and format


class ImageVariants:
    def __init__(self, maker: VariantMaker, content: ImageContent) -> None:
        self.maker = maker
        self.content = content

    async def find_or_make(self, detail: ImageDetail, planned: Planned) -> tuple[Variant, bytes | None]:
        """The variant, and its bytes when they were just read or made."""
        key, width, fmt = planned
        try:
            return await self.maker.find_or_make(detail, key, width, fmt)
        except OriginalMissing:
            await self._say_why_missing(detail)
            raise StorageUnavailable("the image's bytes could not be read to make the variant") from None

    async def open(
        self, detail: ImageDetail, variant: Variant, byte_range: ContentRange | None = None
    ) -> BlobStream:
        start, end = (byte_range.start, byte_range.end) if byte_range else (0, None)
        stream = await self.maker.blobs.open(variant.key, start, end)
        if stream is None:  # removed with its image since the row was read: the original says 404
            await self._say_why_missing(detail)
            raise StorageUnavailable("the variant's bytes are missing from storage")
        return stream

    async def url(self, variant: Variant, ttl: timedelta) -> str | None:
        """A presigned URL where storage makes them (S3); None otherwise."""
        return await self.maker.blobs.presigned_url(variant.key, ttl)

    async def _say_why_missing(self, detail: ImageDetail) -> None:
        """Raise as a read of the original would (404 deleted, 503 lost); return if it is there."""
        stream = await self.content.open(detail)
        await stream.aclose()

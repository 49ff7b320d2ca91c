"""Edit uploads: a new image made from uploaded images (the first is the one changed) and an optional
mask, as OpenAI's edits take them. Only the result is stored: the uploads are the client's, not images
this service made, so the result has no parent_guid."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.image_formats import read_upload
from pixyproxy.domain.models import MAX_REFERENCES, PNG, Caller, EditRequest, SourceImage
from pixyproxy.domain.pixel_budget import check_upload_headers, in_decode_slot
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usecases.generate import Previews, streaming
from pixyproxy.domain.usecases.metering import Paid, ProviderCalls, safety_identifier_for
from pixyproxy.domain.usecases.several import stored_all_or_none
from pixyproxy.domain.usecases.storing import ImageWriter, JustStored
from pixyproxy.domain.usecases.validation import RequestRules


@dataclass(frozen=True)
class Uploads:
    """Uploaded images and mask, checked once for every edit made from them."""

    images: list[SourceImage]
    mask: SourceImage | None


async def read_uploads(images: list[bytes], mask: bytes | None = None) -> Uploads:
    """Readable PNG, WebP or JPEG images (1 to MAX_REFERENCES + 1); the mask a PNG of the first's size."""
    if not 1 <= len(images) <= MAX_REFERENCES + 1:
        raise InvalidImageRequest(f"image: send 1 to {MAX_REFERENCES + 1} images")
    await asyncio.to_thread(check_upload_headers, images, mask)
    sources = [
        await in_decode_slot(read_upload, data, "image", f"image-{i}") for i, data in enumerate(images)
    ]
    if mask is None:
        return Uploads(sources, None)
    checked = await in_decode_slot(read_upload, mask, "mask", "mask")
    width, height = sources[0].width, sources[0].height
    if checked.content_type != PNG:
        raise InvalidImageRequest("mask: must be a PNG (fully transparent pixels mark what to change)")
    if (checked.width, checked.height) != (width, height):
        raise InvalidImageRequest(
            f"mask: the mask is {checked.width}x{checked.height}, the image {width}x{height}; "
            "they must be the same size"
        )
    return Uploads(sources, checked)


class EditUploads:
    def __init__(
        self, rules: RequestRules, calls: ProviderCalls, writer: ImageWriter, generator: ImageGenerator
    ) -> None:
        self.rules = rules
        self.calls = calls
        self.writer = writer
        self.generator = generator

    def check(self, request: EditRequest | Mapping[str, Any]) -> EditRequest:
        return self.rules.check(request, EditRequest)

    async def __call__(
        self,
        edit: EditRequest,
        uploads: Uploads,
        n: int = 1,
        caller: Caller | None = None,
        previews: Previews | None = None,
    ) -> list[JustStored]:
        """n edits of a checked request, stored only once every one is made: all or none; each with its
        bytes, for an answer that carries them."""
        return await stored_all_or_none(
            n,
            lambda _: self.make(edit, uploads, caller, previews),
            lambda paid: self.writer.store_keeping_bytes(edit, paid, caller),
        )

    async def make(
        self, edit: EditRequest, uploads: Uploads, caller: Caller | None, previews: Previews | None = None
    ) -> Paid:
        """The provider's edit of a checked request, paid for, not stored yet."""
        safety = safety_identifier_for(owner_of(caller))
        return await self.calls.call(
            caller,
            "edit",
            lambda: self.generator.edit(
                edit, uploads.images, uploads.mask, safety_identifier=safety, **streaming(previews)
            ),
        )

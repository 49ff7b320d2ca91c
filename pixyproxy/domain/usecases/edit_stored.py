"""Edit a stored image: a new image made from it (plus an optional mask and references, all stored
images the caller sees) and a prompt; the result names them in its lineage."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.ids import parse_guid
from pixyproxy.domain.models import Caller, EditRequest, ImageDetail
from pixyproxy.domain.pixel_budget import ReadOnce, check_request_pixels, edit_sizes
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usecases.idempotency import Idempotency, fingerprint
from pixyproxy.domain.usecases.metering import ProviderCalls, safety_identifier_for
from pixyproxy.domain.usecases.reading import ImageContent, ReadImage
from pixyproxy.domain.usecases.storing import ImageRecords, ImageWriter, Lineage
from pixyproxy.domain.usecases.validation import RequestRules


class EditStoredImage:
    def __init__(
        self,
        rules: RequestRules,
        read: ReadImage,
        content: ImageContent,
        calls: ProviderCalls,
        writer: ImageWriter,
        idempotency: Idempotency,
        records: ImageRecords,
        generator: ImageGenerator,
    ) -> None:
        self.rules = rules
        self.read = read
        self.content = content
        self.calls = calls
        self.writer = writer
        self.idempotency = idempotency
        self.records = records
        self.generator = generator

    async def __call__(
        self,
        guid: str | UUID,
        request: EditRequest | Mapping[str, Any],
        caller: Caller | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        edit = self.rules.check(request, EditRequest)
        source_guid = parse_guid(guid)
        key = self.idempotency.key(caller, idempotency_key, fingerprint(edit, f"edit:{source_guid}"))

        async def produce() -> ImageDetail:
            source = await self.read(source_guid, caller)
            mask = await self.read.referenced(edit.mask_guid, "mask_guid", caller)
            references = [
                await self.read.referenced(g, "reference_guids", caller) for g in edit.reference_guids or ()
            ]
            if mask is not None and (mask.width, mask.height) != (source.width, source.height):
                raise InvalidImageRequest(
                    f"mask_guid: the mask is {mask.width}x{mask.height}, the image "
                    f"{source.width}x{source.height}; they must be the same size"
                )
            check_request_pixels(edit_sizes(source, mask, references))
            read = ReadOnce(self.content.source, key=lambda detail: detail.guid)
            images = [await read(d) for d in (source, *references) if d is not None]
            mask_source = await read(mask) if mask is not None else None
            safety = safety_identifier_for(owner_of(caller))
            paid = await self.calls.call(
                caller,
                "edit",
                lambda: self.generator.edit(edit, images, mask_source, safety_identifier=safety),
            )
            lineage = Lineage(source.guid, edit.mask_guid, list(edit.reference_guids or ()) or None)
            return await self.writer.store(edit, paid, caller, key, lineage)

        if key is None:
            return await produce()
        return await self.idempotency.once(self.records, key, produce)

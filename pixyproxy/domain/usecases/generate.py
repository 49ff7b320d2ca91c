"""Generate: a prompt in, one image made, paid for and stored (POST /image/, each of a job's images,
each of /v1's n)."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pixyproxy.domain.models import Caller, GeneratedImage, GenerationRequest, ImageDetail, OnPartial
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usecases.idempotency import Idempotency, Key, fingerprint
from pixyproxy.domain.usecases.metering import Paid, ProviderCalls, safety_identifier_for
from pixyproxy.domain.usecases.several import stored_all_or_none
from pixyproxy.domain.usecases.storing import CheckedBlob, ImageRecords, ImageWriter, JustStored
from pixyproxy.domain.usecases.validation import RequestRules


@dataclass(frozen=True)
class Previews:
    """Streamed previews: up to `count` (1-3) handed to `on_partial` before the final image."""

    count: int
    on_partial: OnPartial

    def options(self) -> dict[str, Any]:
        return {"partial_images": self.count, "on_partial": self.on_partial}


def streaming(previews: Previews | None) -> dict[str, Any]:
    """The generator's keyword arguments for previews; none when none are asked for."""
    return previews.options() if previews is not None else {}


class GenerateImage:
    def __init__(
        self,
        rules: RequestRules,
        calls: ProviderCalls,
        writer: ImageWriter,
        idempotency: Idempotency,
        records: ImageRecords,
        generator: ImageGenerator,
    ) -> None:
        self.rules = rules
        self.calls = calls
        self.writer = writer
        self.idempotency = idempotency
        self.records = records
        self.generator = generator

    def check(self, request: BaseModel | Mapping[str, Any]) -> GenerationRequest:
        return self.rules.check(request, GenerationRequest)

    async def __call__(
        self,
        request: GenerationRequest | Mapping[str, Any],
        caller: Caller | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        """The image belongs to `caller`, made within its budget; a key makes it at most once."""
        checked = self.check(request)
        key = self.idempotency.key(caller, idempotency_key, fingerprint(checked))

        if key is None:
            return await self._one(checked, caller)
        return await self.idempotency.once(self.records, key, lambda: self._one(checked, caller, key))

    async def _one(
        self, request: GenerationRequest, caller: Caller | None, key: Key | None = None
    ) -> ImageDetail:
        paid, put = await self._made_and_put(request, caller)
        return await self.writer.store(request, paid, caller, key, put=put)

    async def _made_and_put(
        self, request: GenerationRequest, caller: Caller | None, previews: Previews | None = None
    ) -> tuple[Paid, CheckedBlob]:
        """One image made, its bytes checked and written while its usage is recorded (its row is
        added after both)."""
        return await self.calls.call_then(
            caller,
            "generate",
            self._generation(request, caller, previews),
            lambda generated: self.writer.put_bytes(request, generated),
        )

    async def many(
        self,
        request: GenerationRequest,
        n: int,
        caller: Caller | None = None,
        previews: Previews | None = None,
    ) -> list[JustStored]:
        """n images of a checked request (/v1's `n`), stored only once every one is made: all or none;
        each with its bytes, for an answer that carries them."""
        if n == 1:
            paid, put = await self._made_and_put(request, caller, previews)
            return [await self.writer.store_keeping_bytes(request, paid, caller, put)]
        return await stored_all_or_none(
            n,
            lambda _: self.make(request, caller, previews),
            lambda paid: self.writer.store_keeping_bytes(request, paid, caller),
        )

    async def make(
        self, request: GenerationRequest, caller: Caller | None, previews: Previews | None = None
    ) -> Paid:
        """The provider's image for a checked request, paid for, not stored yet."""
        return await self.calls.call(caller, "generate", self._generation(request, caller, previews))

    def _generation(
        self, request: GenerationRequest, caller: Caller | None, previews: Previews | None = None
    ) -> Callable[[], Awaitable[GeneratedImage]]:
        safety = safety_identifier_for(owner_of(caller))
        return lambda: self.generator.generate(request, safety_identifier=safety, **streaming(previews))

"""Decorators that report what the generator and the blob store do to a metrics recorder.

They implement the same ports as what they wrap, so the domain never learns that it is measured and no
Prometheus import reaches it; the container wires them (see pixyproxy/container.py).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.models import EditRequest, GeneratedImage, GenerationRequest, OnPartial, SourceImage
from pixyproxy.domain.ports.blobs import B, BlobStore, BlobStream
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.ports.metrics import MetricsRecorder


def _streaming(partial_images: int, on_partial: OnPartial | None) -> dict[str, Any]:
    return {"partial_images": partial_images, "on_partial": on_partial} if on_partial is not None else {}


class MeteredGenerator:
    """Counts generations by model and outcome and times each one."""

    def __init__(self, inner: ImageGenerator, recorder: MetricsRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def default_model(self) -> str:
        return self.inner.default_model

    def validate(self, request: GenerationRequest) -> None:
        self.inner.validate(request)

    async def generate(
        self,
        request: GenerationRequest,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        # Previews are passed on only when asked for, as the generator was called before it was measured.
        options = _streaming(partial_images, on_partial)
        return await self._measured(
            request, lambda: self.inner.generate(request, safety_identifier=safety_identifier, **options)
        )

    async def edit(
        self,
        request: EditRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        options = _streaming(partial_images, on_partial)
        return await self._measured(
            request,
            lambda: self.inner.edit(request, images, mask, safety_identifier=safety_identifier, **options),
        )

    async def _measured(
        self, request: GenerationRequest, call: Callable[[], Awaitable[GeneratedImage]]
    ) -> GeneratedImage:
        started = time.perf_counter()
        outcome = "error"
        model = request.model or self.inner.default_model
        try:
            image = await call()
        except ImageException as exc:
            outcome = exc.code
            raise
        except asyncio.CancelledError:  # the client went away
            outcome = "cancelled"
            raise
        else:
            outcome, model = "success", image.model
            return image
        finally:
            self.recorder.observe_generation(model, outcome, time.perf_counter() - started)

    async def init(self) -> None:
        await self.inner.init()

    async def ping(self) -> None:
        await self.inner.ping()

    async def provider_checks(self) -> dict[str, str]:
        checks = getattr(self.inner, "provider_checks", None)
        return await checks() if checks is not None else {}

    async def close(self) -> None:
        await self.inner.close()


class MeteredBlobStore:
    """Counts the images and bytes written to storage; every other call passes straight through."""

    def __init__(self, inner: BlobStore, recorder: MetricsRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    @property
    def name(self) -> str:
        return self.inner.name

    async def init(self) -> None:
        await self.inner.init()

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.inner.put(key, data, content_type)
        self.recorder.add_stored(len(data))

    async def put_prepared(self, prepare: Callable[[], B]) -> B:
        blob = await self.inner.put_prepared(prepare)
        self.recorder.add_stored(len(blob.data))
        return blob

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobStream | None:
        return await self.inner.open(key, start, end)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def delete_many(self, keys: list[str]) -> None:
        await self.inner.delete_many(keys)

    async def list_older_than(self, cutoff: datetime) -> list[str]:
        return await self.inner.list_older_than(cutoff)

    async def presigned_url(self, key: str, ttl: timedelta) -> str | None:
        return await self.inner.presigned_url(key, ttl)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


def _implements_the_ports(
    generator: MeteredGenerator, blobs: MeteredBlobStore
) -> tuple[ImageGenerator, BlobStore]:
    """Never called: mypy checks here that each decorator implements the port it wraps."""
    return generator, blobs

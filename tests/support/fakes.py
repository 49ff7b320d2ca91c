"""In-memory fakes of the ports, for unit tests. The contract suites run them beside the real adapters,
so a fake that drifts from the real behaviour fails a test."""

import asyncio
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from PIL import Image

from pixyproxy.domain.errors import IdempotencyConflict, InvalidImageRequest
from pixyproxy.domain.models import (
    GeneratedImage,
    GenerationRequest,
    IdempotentResult,
    ImageDetail,
    ImagePage,
    PagePosition,
    SourceImage,
)
from pixyproxy.domain.search import ImageFilter, matches
from pixyproxy.domain.usage import UsageEntry, UsageTotal


class ManualClock:
    """A clock for the use cases (clock=...) that moves only when the test calls advance()."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def png_bytes(width: int = 64, height: int = 48, colour=(200, 30, 30), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format=fmt)
    return out.getvalue()


class InMemoryImageRepository:
    name = "memory"

    def __init__(self) -> None:
        self.rows: list[tuple[int, ImageDetail, str | None, str | None]] = []
        self.fail_with: Exception | None = None  # set to make every call raise
        self.usage: list[UsageEntry] = []

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def init(self) -> None:
        self._check()

    async def add(self, detail: ImageDetail, idempotency_key=None, request_hash=None) -> None:
        self._check()
        if idempotency_key is not None and any(key == idempotency_key for _, _, key, _ in self.rows):
            raise IdempotencyConflict()
        if any(d.guid == detail.guid for _, d, _, _ in self.rows):
            raise ValueError("duplicate guid")
        self.rows.append((len(self.rows) + 1, detail, idempotency_key, request_hash))

    async def get(self, guid: UUID, owner: str | None = None) -> ImageDetail | None:
        self._check()
        return next((d for _, d, _, _ in self.rows if d.guid == guid and owner in (None, d.owner)), None)

    async def settled(self, guid: UUID) -> ImageDetail | None:
        return await self.get(guid)

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        self._check()
        for _, detail, stored_key, request_hash in self.rows:
            if stored_key == key:
                return IdempotentResult(detail=detail, request_hash=request_hash or "")
        return None

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        self._check()
        for index, (row_id, detail, stored_key, _) in enumerate(self.rows):
            if stored_key == key and detail.created_at < older_than:
                self.rows[index] = (row_id, detail, None, None)

    async def list_page(
        self, limit: int, after: PagePosition | None = None, filters: ImageFilter | None = None
    ) -> ImagePage:
        self._check()
        ordered = sorted(self.rows, key=lambda r: (r[1].created_at, r[0]), reverse=True)
        if filters is not None:
            ordered = [r for r in ordered if _passes(r[1], filters)]
        if after is not None:
            ordered = [r for r in ordered if (r[1].created_at, r[0]) < (after.created_at, after.id)]
        page = ordered[:limit]
        more = len(ordered) > limit
        last = page[-1] if page else None
        position = PagePosition(created_at=last[1].created_at, id=last[0]) if more and last else None
        return ImagePage(items=[r[1] for r in page], next=position)

    async def delete(self, guid: UUID) -> bool:
        self._check()
        before = len(self.rows)
        self.rows = [r for r in self.rows if r[1].guid != guid]
        return len(self.rows) < before

    async def created_before(self, cutoff: datetime, limit: int) -> list[ImageDetail]:
        self._check()
        old = [r for r in self.rows if r[1].created_at < cutoff]
        return [r[1] for r in sorted(old, key=lambda r: (r[1].created_at, r[0]))[:limit]]

    async def record_usage(self, entry: UsageEntry) -> None:
        self._check()
        self.usage.append(entry)

    async def usage_totals(
        self, since: datetime, until: datetime, owner: str | None = None
    ) -> list[UsageTotal]:
        self._check()
        totals: dict[str | None, list[float]] = {}
        for e in self.usage:
            if since <= e.created_at < until and (owner is None or e.owner == owner):
                t = totals.setdefault(e.owner, [0, 0, 0, 0.0])
                t[0] += e.images
                t[1] += e.input_tokens
                t[2] += e.output_tokens
                t[3] += e.estimated_cost_usd or 0.0
        return [
            UsageTotal(
                key=name,
                images=int(t[0]),
                input_tokens=int(t[1]),
                output_tokens=int(t[2]),
                total_tokens=int(t[1] + t[2]),
                estimated_cost_usd=round(t[3], 6),
            )
            for name, t in sorted(totals.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
        ]

    async def reindex_words(self) -> int:
        self._check()
        return len(self.rows)  # searched by reading every prompt: nothing to index

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        self._check()
        present = {d.guid for _, d, _, _ in self.rows}
        return {g for g in guids if g in present}

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None


def _passes(detail: ImageDetail, filters: ImageFilter) -> bool:
    return (
        matches(detail.prompt, filters.words)
        and (filters.model is None or detail.model == filters.model)
        and (filters.created_after is None or detail.created_at > filters.created_after)
        and (filters.created_before is None or detail.created_at < filters.created_before)
        and (filters.owner is None or detail.owner == filters.owner)
    )


class _MemoryStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 4096):
            yield self.data[start : start + 4096]

    async def aclose(self) -> None:
        return None


@dataclass
class InMemoryBlobStore:
    name: str = "memory"
    blobs: dict[str, tuple[bytes, str, datetime]] = field(default_factory=dict)
    fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def init(self) -> None:
        self._check()

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        if key in self.blobs:
            from pixyproxy.domain.errors import StorageUnavailable

            raise StorageUnavailable(f"refusing to overwrite existing blob {key}")
        self.blobs[key] = (data, content_type, datetime.now(UTC))

    async def put_prepared(self, prepare):
        blob = prepare()
        await self.put(blob.key, blob.data, blob.content_type)
        return blob

    async def open(self, key: str, start: int = 0, end: int | None = None):
        self._check()
        if key not in self.blobs:
            return None
        data = self.blobs[key][0]
        last = len(data) - 1 if end is None else min(end, len(data) - 1)
        return _MemoryStream(data[start : last + 1])

    async def delete(self, key: str) -> None:
        self._check()
        self.blobs.pop(key, None)

    async def delete_many(self, keys: list[str]) -> None:
        self._check()
        for key in keys:
            self.blobs.pop(key, None)

    async def list_older_than(self, cutoff: datetime) -> list[str]:
        self._check()
        return [k for k, (_, _, written) in self.blobs.items() if written < cutoff]

    async def presigned_url(self, key: str, ttl: timedelta) -> str | None:
        return None

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None


class ScriptedGenerator:
    """Answers with `image` (a small PNG by default), or raises `fail_with`; records every call.

    Tests order concurrent steps with its events: `called` is set once a generation has begun, and while
    `hold` is set, every generation waits there until the test calls `release()`."""

    name = "scripted"
    default_model = "scripted-1"

    def __init__(self, image: bytes | None = None, hold: bool = False) -> None:
        self.image = image if image is not None else png_bytes()
        self.fail_with: Exception | None = None
        self.usage: dict[str, Any] | None = None  # the usage each answer reports
        self.calls: list[GenerationRequest] = []
        self.options: list[dict[str, Any]] = []  # the keyword arguments of each call
        self.edits: list[tuple[GenerationRequest, list[SourceImage], SourceImage | None]] = []
        self.unready_with: Exception | None = None  # set to make ping() raise
        self.called = asyncio.Event()
        self.hold = hold
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    def validate(self, request: GenerationRequest) -> None:
        if request.model not in (None, self.default_model):
            raise InvalidImageRequest(f"model: unknown model {request.model!r}")

    async def generate(self, request: GenerationRequest, **options: Any) -> GeneratedImage:
        self.calls.append(request)
        self.options.append(options)
        self.called.set()
        if self.hold:
            await self._released.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return GeneratedImage(
            data=self.image, model=self.default_model, revised_prompt=None, usage=self.usage
        )

    async def edit(
        self,
        request: GenerationRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        **options: Any,
    ) -> GeneratedImage:
        self.edits.append((request, images, mask))
        return await self.generate(request, **options)

    async def init(self) -> None:
        return None

    async def ping(self) -> None:
        if self.unready_with is not None:
            raise self.unready_with

    async def close(self) -> None:
        return None


class InMemoryLocks:
    """IdempotencyLocks for several services in one test (replicas sharing one lock store); a waiter
    wakes on the release itself, no polling. `acquired` is set whenever a lock is taken."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.released: dict[str, asyncio.Event] = {}
        self.acquired = asyncio.Event()
        self.refused = asyncio.Event()  # set when an acquire finds the lock taken

    async def acquire(self, key: str, ttl_seconds: float) -> str | None:
        if key in self.held:
            self.refused.set()
            return None
        token = f"token-{len(self.released)}"
        self.held[key] = token
        self.released[key] = asyncio.Event()
        self.acquired.set()
        return token

    async def release(self, key: str, token: str) -> None:
        if self.held.get(key) == token:
            del self.held[key]
            self.released[key].set()

    async def wait_released(self, key: str, timeout_seconds: float) -> None:
        if key in self.held:
            await asyncio.wait_for(self.released[key].wait(), timeout_seconds)

    async def ping(self) -> None:
        return None

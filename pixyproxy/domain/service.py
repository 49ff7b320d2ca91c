"""The image use cases: generate-and-store, edit, read, list, serve content, collect garbage."""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from pydantic import ValidationError

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.cursor import decode_cursor, encode_cursor
from pixyproxy.domain.errors import (
    BudgetExceeded,
    IdempotencyConflict,
    ImageException,
    ImageNotFound,
    InvalidImageRequest,
    StorageUnavailable,
)
from pixyproxy.domain.image_formats import check_image, read_upload
from pixyproxy.domain.models import (
    MAX_REFERENCES,
    PNG,
    Caller,
    ContentRange,
    EditRequest,
    GeneratedImage,
    GenerationRequest,
    ImageDetail,
    OnPartial,
    Readiness,
    SourceImage,
)
from pixyproxy.domain.search import NO_FILTER, ImageFilter
from pixyproxy.domain.tenancy import owner_filter, owner_of, scoped_idempotency_key, sees
from pixyproxy.domain.usage import (
    DEFAULT_PRICES,
    Budgets,
    ModelUsage,
    Price,
    ProviderUsage,
    UsageEntry,
    UsageReport,
    UsageTotal,
    estimate_cost,
    tokens_of,
    totals_by,
)
from pixyproxy.domain.variants import all_variant_keys
from pixyproxy.ports import BlobStore, BlobStream, ImageGenerator, ImageRepository, MetricsRecorder
from pixyproxy.ports.counters import IdempotencyLocks

log = logging.getLogger(__name__)

# Defaults written once: settings.py takes its defaults from these.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
DEFAULT_MAX_PROMPT_LENGTH = 4000
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A replica holding an Idempotency-Key's lock that dies lets go of it after this long.
DEFAULT_IDEMPOTENCY_LOCK_SECONDS = 600


def parse_guid(guid: str | UUID) -> UUID:
    """A guid that is not a UUID names no image: 404, never a lookup with the raw string."""
    if isinstance(guid, UUID):
        return guid
    if len(guid) > 64:
        raise ImageNotFound()
    try:
        return UUID(guid)
    except ValueError as exc:
        raise ImageNotFound() from exc


# Options added after keys were first stored: left out of a fingerprint while unset, so a key stored
# before them still matches a replay of the same body.
_LATER_OPTIONS = frozenset(
    {"background", "output_format", "output_compression", "moderation", "n", "mask_guid", "reference_guids"}
    | {"complexity", "frame_count", "frame_duration_ms", "svg"}
)
SEVERAL_IMAGES = (
    "n: this route makes one image; for several use POST /image/jobs or POST /v1/images/generations"
)


def request_fingerprint(request: GenerationRequest, edit_of: UUID | None = None) -> str:
    """A hash of what was asked, to tell a replay of an Idempotency-Key from a different request."""
    unset = {name for name in _LATER_OPTIONS if getattr(request, name, None) is None}
    text = request.model_dump_json(exclude=unset)
    if edit_of is not None:  # the same body against another image is another request
        text = f"edit:{edit_of}:{text}"
    return hashlib.sha256(text.encode()).hexdigest()


def safety_identifier_for(caller: str | None) -> str | None:
    """What the provider is told of who asked: a stable hash of the caller (itself a key digest prefix),
    so abuse can be traced to a key without the provider ever seeing the key."""
    if not caller:
        return None
    return "pixyproxy-" + hashlib.sha256(f"pixyproxy-safety:{caller}".encode()).hexdigest()[:32]


class ImageService:
    def __init__(
        self,
        generator: ImageGenerator,
        repository: ImageRepository,
        blobs: BlobStore,
        *,
        max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH,
        idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        new_guid: Callable[[], UUID] = uuid4,
        budgets: Budgets | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
        locks: IdempotencyLocks | None = None,
        idempotency_lock_seconds: float = DEFAULT_IDEMPOTENCY_LOCK_SECONDS,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.budgets = budgets
        self.prices = prices
        # Shared by replicas (Redis) when configured: one provider call per Idempotency-Key across them.
        self.locks = locks
        self.idempotency_lock_seconds = idempotency_lock_seconds
        self.metrics = metrics
        self.generator = generator
        self.repository = repository
        self.blobs = blobs
        self.max_prompt_length = max_prompt_length
        # An Idempotency-Key holds its image this long; after that the key counts as unused.
        self.idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
        self._clock = clock
        self._new_guid = new_guid
        # Idempotency keys being generated in this process: a duplicate waits for the first.
        self._in_flight: dict[str, tuple[str, asyncio.Future[ImageDetail]]] = {}

    # -- create ---------------------------------------------------------------------------------

    def validate(
        self, request: GenerationRequest | dict, model: type[GenerationRequest] = GenerationRequest
    ) -> GenerationRequest:
        """Validate again whatever the web layer hands over, then check the configured limits."""
        try:
            data = request.model_dump() if isinstance(request, GenerationRequest) else request
            request = model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidImageRequest(f"{where}: {first['msg']}") from exc
        if len(request.prompt) > self.max_prompt_length:
            raise InvalidImageRequest(f"prompt: must be at most {self.max_prompt_length} characters")
        if request.n not in (None, 1):
            raise InvalidImageRequest(SEVERAL_IMAGES)
        self.generator.validate(request)
        return request

    async def create(
        self,
        request: GenerationRequest | dict,
        idempotency_key: str | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
        before_store: Callable[[], Awaitable[None]] | None = None,
        caller: Caller | None = None,
    ) -> ImageDetail:
        """before_store runs between the generator's answer and the write, and may raise to store
        nothing (a job canceled meanwhile). The image belongs to `caller`, within its budget."""
        request = self.validate(request)
        streaming = {"partial_images": partial_images, "on_partial": on_partial} if on_partial else {}
        if idempotency_key is not None:
            idempotency_key = scoped_idempotency_key(caller, idempotency_key)

        async def produce(fingerprint: str | None) -> ImageDetail:
            generated, cost = await self._provider_call(
                caller,
                "generate",
                lambda: self.generator.generate(request, safety_identifier=safety_identifier, **streaming),
            )
            if before_store is not None:
                await before_store()
            return await self._store(
                request, generated, idempotency_key, fingerprint, safety_identifier, caller=caller, cost=cost
            )

        if idempotency_key is None:
            return await produce(None)
        return await self._once(idempotency_key, request_fingerprint(request), produce)

    async def edit(
        self,
        guid: str | UUID,
        request: EditRequest | dict,
        idempotency_key: str | None = None,
        *,
        safety_identifier: str | None = None,
        caller: Caller | None = None,
    ) -> ImageDetail:
        """A new image made from a stored one (plus an optional mask and references) and a prompt;
        `caller` must see every one of them."""
        request = self.validate(request, EditRequest)
        assert isinstance(request, EditRequest)
        source_guid = parse_guid(guid)
        if idempotency_key is not None:
            idempotency_key = scoped_idempotency_key(caller, idempotency_key)

        async def produce(fingerprint: str | None) -> ImageDetail:
            source = await self.get(source_guid, caller)
            mask = await self._referenced(request.mask_guid, "mask_guid", caller)
            references = [
                await self._referenced(g, "reference_guids", caller) for g in request.reference_guids or ()
            ]
            if mask is not None and (mask.width, mask.height) != (source.width, source.height):
                raise InvalidImageRequest(
                    f"mask_guid: the mask is {mask.width}x{mask.height}, the image "
                    f"{source.width}x{source.height}; they must be the same size"
                )
            images = [await self._source(d) for d in (source, *references) if d is not None]
            mask_source = await self._source(mask) if mask is not None else None
            generated, cost = await self._provider_call(
                caller,
                "edit",
                lambda: self.generator.edit(
                    request, images, mask_source, safety_identifier=safety_identifier
                ),
            )
            lineage = {
                "parent_guid": source.guid,
                "mask_guid": request.mask_guid,
                "reference_guids": list(request.reference_guids) if request.reference_guids else None,
            }
            return await self._store(
                request, generated, idempotency_key, fingerprint, safety_identifier, lineage, caller, cost
            )

        if idempotency_key is None:
            return await produce(None)
        return await self._once(idempotency_key, request_fingerprint(request, source_guid), produce)

    async def read_uploads(
        self, images: list[bytes], mask: bytes | None = None
    ) -> tuple[list[SourceImage], SourceImage | None]:
        """Uploaded images (the first is the one to change) and mask, checked once for every edit made
        from them: readable PNG, WebP or JPEG; the mask a PNG of the first image's size."""
        if not 1 <= len(images) <= MAX_REFERENCES + 1:
            raise InvalidImageRequest(f"image: send 1 to {MAX_REFERENCES + 1} images")
        sources = [
            await asyncio.to_thread(read_upload, data, "image", f"image-{i}") for i, data in enumerate(images)
        ]
        if mask is None:
            return sources, None
        checked = await asyncio.to_thread(read_upload, mask, "mask", "mask")
        width, height = sources[0].width, sources[0].height
        if checked.content_type != PNG:
            raise InvalidImageRequest("mask: must be a PNG (fully transparent pixels mark what to change)")
        if (checked.width, checked.height) != (width, height):
            raise InvalidImageRequest(
                f"mask: the mask is {checked.width}x{checked.height}, the image {width}x{height}; "
                "they must be the same size"
            )
        return sources, checked

    async def edit_uploaded(
        self,
        request: EditRequest | dict,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
        before_store: Callable[[], Awaitable[None]] | None = None,
        caller: Caller | None = None,
    ) -> ImageDetail:
        """A new image made from uploaded images (from read_uploads) and a prompt, as OpenAI's edits take
        them. Only the result is stored: the uploads are the client's, not images this service made, so
        the result has no parent_guid. before_store and caller as for create."""
        request = self.validate(request, EditRequest)
        streaming = {"partial_images": partial_images, "on_partial": on_partial} if on_partial else {}
        generated, cost = await self._provider_call(
            caller,
            "edit",
            lambda: self.generator.edit(
                request, images, mask, safety_identifier=safety_identifier, **streaming
            ),
        )
        if before_store is not None:
            await before_store()
        return await self._store(request, generated, None, None, safety_identifier, caller=caller, cost=cost)

    async def _referenced(self, guid: UUID | None, where: str, caller: Caller | None) -> ImageDetail | None:
        """An image named in a request body: unknown (or another key's) is the body's fault (422), not a
        missing route."""
        if guid is None:
            return None
        detail = await self.repository.get(guid)
        if detail is None or not sees(caller, detail.owner):
            raise InvalidImageRequest(f"{where}: no image has the guid {guid}")
        return detail

    async def _source(self, detail: ImageDetail) -> SourceImage:
        stream = await self.open_content(detail)
        try:
            data = b"".join([chunk async for chunk in stream.chunks()])
        finally:
            await stream.aclose()
        return SourceImage(data, detail.content_type, detail.filename, detail.width, detail.height)

    async def _provider_call(
        self, caller: Caller | None, operation: str, call: Callable[[], Awaitable[GeneratedImage]]
    ) -> tuple[GeneratedImage, float | None]:
        """Every call that costs money goes through here: the budget decides before it (raising
        BudgetExceeded, the provider never called), and what the provider reported is recorded after it,
        whether or not its image is then stored. Answers the generated image and its estimated cost."""
        reservation = None
        if self.budgets is not None:
            try:
                reservation = await self.budgets.reserve(caller)
            except BudgetExceeded:
                if self.metrics is not None and caller is not None:
                    self.metrics.add_budget_refusal(caller.name)
                raise
        try:
            generated = await call()
        except BaseException:
            if self.budgets is not None:
                await self.budgets.refund(reservation)
            raise
        spent_in, spent_out = tokens_of(generated.usage)
        cost = generated.cost_usd
        if cost is None:  # the catalogue gave none: the price table (PIXYPROXY_PRICES) decides
            cost = estimate_cost(generated.model, generated.usage, self.prices)
        entry = UsageEntry(
            self._clock(),
            owner_of(caller),
            generated.model,
            operation,
            1,
            spent_in,
            spent_out,
            cost,
            generated.provider,
        )
        try:
            if self.budgets is not None:
                await self.budgets.settle(reservation, spent_in + spent_out)
            await self.repository.record_usage(entry)
        except ImageException as exc:  # the image was paid for: store it; the log says what was lost
            log.warning("usage of a %s by %s not recorded: %s", operation, entry.owner or "-", exc.message)
        if self.metrics is not None:
            self.metrics.add_usage(entry.owner or "-", 1, spent_in, spent_out, cost or 0.0)
        return generated, cost

    async def usage(self, since: datetime, until: datetime, caller: Caller | None = None) -> UsageReport:
        """Per-key totals in [since, until): a user key its own, an admin (or keys off) every key's."""
        if until <= since:
            raise InvalidImageRequest("until: must be after since")
        owner = owner_filter(caller)
        rows = await self.repository.usage_totals(since, until, owner)  # per key, model and provider
        totals = totals_by(rows, UsageTotal, "key")
        if owner is not None and not totals:  # a key that made nothing still sees its own zero line
            totals = [
                UsageTotal(
                    key=owner,
                    images=0,
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                    estimated_cost_usd=0.0,
                )
            ]
        return UsageReport(
            since=since,
            until=until,
            keys=totals,
            models=totals_by([r for r in rows if r.model is not None], ModelUsage, "model", "provider"),
            providers=totals_by(rows, ProviderUsage, "provider"),
        )

    async def _once(
        self,
        idempotency_key: str,
        fingerprint: str,
        produce: Callable[[str | None], Awaitable[ImageDetail]],
    ) -> ImageDetail:
        """Run `produce` at most once per Idempotency-Key: a replay gets the stored image, a duplicate in
        flight waits for the first, a different request under the key is a conflict."""
        while True:
            # Checked and registered with no await in between: of the duplicates in this process, exactly
            # one leads; the others wait for it. (Registering only after the awaited lookup below let a
            # duplicate miss both the stored row and the in-flight entry, and pay a second time.)
            running = self._in_flight.get(idempotency_key)
            if running is None:
                break
            running_hash, running_future = running
            if running_hash != fingerprint:
                raise IdempotencyConflict()
            try:
                return await asyncio.shield(running_future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running_future.cancelled() and task is not None and not task.cancelling():
                    continue  # the leader was cancelled, not us: take over (the key is free again)
                raise
        future: asyncio.Future[ImageDetail] = asyncio.get_running_loop().create_future()
        self._in_flight[idempotency_key] = (fingerprint, future)
        try:
            detail = await self._stored_for_key(idempotency_key, fingerprint)
            if detail is None and self.locks is None:
                detail = await produce(fingerprint)
            elif detail is None:
                detail = await self._produce_locked(idempotency_key, fingerprint, produce)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: a lone request must not log "never retrieved"
            raise
        else:
            future.set_result(detail)
            return detail
        finally:
            del self._in_flight[idempotency_key]

    async def _stored_for_key(self, idempotency_key: str, fingerprint: str) -> ImageDetail | None:
        """The image stored under the key (a replay), None when the key is unused or has expired."""
        existing = await self.repository.get_by_idempotency_key(idempotency_key)
        if existing is None:
            return None
        cutoff = self._clock() - self.idempotency_ttl
        if existing.detail.created_at < cutoff:
            # Expired: the key counts as unused. Let go of it (the store checks the age again in
            # the same statement, so a fresh image another process just stored keeps its key)
            # and generate; the new image takes the key, or add() reports who took it first.
            await self.repository.release_idempotency_key(idempotency_key, cutoff)
            return None
        return self._replay(existing.detail, existing.request_hash, fingerprint)

    async def _produce_locked(
        self,
        idempotency_key: str,
        fingerprint: str,
        produce: Callable[[str | None], Awaitable[ImageDetail]],
    ) -> ImageDetail:
        """Across replicas: the one holding the key's shared lock calls the provider; another waits for
        the lock to go, then replays what was stored (or, if the holder failed, takes its turn)."""
        assert self.locks is not None
        lock = "idempotency:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        while True:
            token = await self.locks.acquire(lock, self.idempotency_lock_seconds)
            if token is not None:
                try:
                    # Looked up again under the lock: the last holder may have stored it just now.
                    detail = await self._stored_for_key(idempotency_key, fingerprint)
                    return detail if detail is not None else await produce(fingerprint)
                finally:
                    await self.locks.release(lock, token)
            await self.locks.wait_released(lock, self.idempotency_lock_seconds)
            detail = await self._stored_for_key(idempotency_key, fingerprint)
            if detail is not None:
                return detail

    @staticmethod
    def _replay(detail: ImageDetail, stored_hash: str, fingerprint: str) -> ImageDetail:
        if stored_hash != fingerprint:
            raise IdempotencyConflict()
        return detail

    async def _store(
        self,
        request: GenerationRequest,
        generated: GeneratedImage,
        idempotency_key: str | None,
        fingerprint: str | None,
        safety_identifier: str | None,
        lineage: dict | None = None,
        caller: Caller | None = None,
        cost: float | None = None,
    ) -> ImageDetail:
        checked = await asyncio.to_thread(
            check_image, generated.data, request.format, request.output_compression
        )
        guid = self._new_guid()
        detail = ImageDetail(
            guid=guid,
            prompt=request.prompt,
            filename=f"{guid}.{checked.extension}",
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
            safety_identifier=safety_identifier,
            owner=owner_of(caller),
            estimated_cost_usd=cost,
            provider=generated.provider,
            deployment=generated.deployment,
            attempts=generated.attempts,
            **(lineage or {}),
        )
        # Bytes first, then the row: a client is never told of an image whose bytes are missing.
        await self.blobs.put(detail.filename, checked.data, checked.content_type)
        try:
            await self.repository.add(detail, idempotency_key, fingerprint)
        except BaseException as exc:
            await self._discard_blob(detail.filename)
            if isinstance(exc, IdempotencyConflict) and idempotency_key is not None:
                # Another process stored this key first: answer with its image, as a replay would.
                existing = await self.repository.get_by_idempotency_key(idempotency_key)
                if existing is not None:
                    return self._replay(existing.detail, existing.request_hash, fingerprint or "")
            raise
        log.info("stored image %s (%d bytes, model %s)", guid, detail.size_bytes, detail.model)
        return detail

    async def _discard_blob(self, key: str) -> None:
        try:
            await self.blobs.delete(key)
        except Exception:  # gc removes it later; the original error is the one to report
            log.warning("could not remove blob %s after a failed write; gc will", key, exc_info=True)

    # -- read -----------------------------------------------------------------------------------

    async def get(self, guid: str | UUID, caller: Caller | None = None) -> ImageDetail:
        """The one lookup every use case on a stored image goes through (read, serve, delete). Another
        key's image is not found: the owner is compared on the row just read, no second query."""
        detail = await self.repository.get(parse_guid(guid))
        if detail is None or not sees(caller, detail.owner):
            raise ImageNotFound()
        return detail

    async def list_images(
        self,
        limit: int = DEFAULT_LIST_LIMIT,
        cursor: str | None = None,
        filters: ImageFilter = NO_FILTER,
        caller: Caller | None = None,
    ) -> tuple[list[ImageDetail], str | None]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidImageRequest(f"limit: must be between 1 and {MAX_LIST_LIMIT}")
        after = decode_cursor(cursor) if cursor is not None else None
        owner = owner_filter(caller)
        if owner is not None:
            filters = replace(filters, owner=owner)
        if filters.empty:  # the unfiltered list keeps its own plain statement
            page = await self.repository.list_page(limit, after)
        else:
            page = await self.repository.list_page(limit, after, filters)
        return page.items, encode_cursor(page.next) if page.next else None

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, guid: str | UUID, caller: Caller | None = None) -> None:
        """Remove the image: its row first (from then on every read is a 404), then its bytes and
        every variant. Bytes a failed store could not remove are orphans that `pixyproxy gc` removes."""
        detail = await self.get(guid, caller)
        if not await self.repository.delete(detail.guid):
            raise ImageNotFound()  # another request deleted it a moment ago
        await self.remove_bytes(detail)

    async def remove_bytes(self, detail: ImageDetail) -> None:
        keys = [detail.filename, *all_variant_keys(detail.guid)]
        try:
            await self.blobs.delete_many(keys)
        except StorageUnavailable as exc:
            log.warning("image %s deleted; its bytes stay until `pixyproxy gc` removes them", detail.guid)
            raise StorageUnavailable(
                "the image is deleted, but storage could not remove its bytes now; `pixyproxy gc` will"
            ) from exc

    async def existing(self, guids: list[UUID]) -> set[UUID]:
        """Which of these images still exist (a job lists the others as deleted)."""
        return await self.repository.existing(guids)

    async def open_content(self, detail: ImageDetail, byte_range: ContentRange | None = None) -> BlobStream:
        start, end = (byte_range.start, byte_range.end) if byte_range else (0, None)
        stream = await self.blobs.open(detail.filename, start, end)
        if stream is None:
            if await self.repository.get(detail.guid) is None:
                raise ImageNotFound()  # deleted since its row was read
            # A row without bytes breaks the store's one promise; say so loudly, answer 503.
            log.error("image %s has a row but no blob %s", detail.guid, detail.filename)
            raise StorageUnavailable("the image's bytes are missing from storage")
        return stream

    async def content_url(self, detail: ImageDetail, ttl: timedelta) -> str | None:
        return await self.blobs.presigned_url(detail.filename, ttl)

    # -- operations -----------------------------------------------------------------------------

    async def readiness(self) -> Readiness:
        readiness = Readiness()
        dependencies = (("metadata", self.repository), ("storage", self.blobs), ("generator", self.generator))
        if self.locks is not None:  # Redis: the shared limits, budgets and Idempotency-Key locks
            dependencies = (*dependencies, ("redis", self.locks))
        for name, dependency in dependencies:
            try:
                await dependency.ping()
                readiness.checks[name] = "ok"
            except ImageException as exc:
                readiness.checks[name] = exc.message
        # The model catalogue's deployments, each by its label (the routing generator has them).
        provider_checks = getattr(self.generator, "provider_checks", None)
        if provider_checks is not None:
            for label, state in (await provider_checks()).items():
                readiness.checks[f"provider {label}"] = state
        return readiness

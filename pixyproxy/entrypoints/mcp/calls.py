"""The MCP tools served by the use cases in this process: the ONE module of the MCP entrypoint that
calls into the domain (and the container), for the caller whose API key the HTTP request carried.

Errors are described exactly as the HTTP API describes them (entrypoints/errors.describe), so a tool's
error text is the HTTP answer's `detail`.
"""

import asyncio
import base64
import contextlib
import io
import math
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any, TypeVar, cast

import anyio
from fastapi.exceptions import RequestValidationError
from PIL import Image
from pydantic import ValidationError

from pixyproxy.container import Container
from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.jobs_models import JobEvent, JobRequest, JobStatus
from pixyproxy.domain.models import Caller, EditRequest, GenerationRequest, ImageDetail
from pixyproxy.domain.search import parse_filter
from pixyproxy.domain.svg import SvgError, looks_like_svg, rasterise, svg_size
from pixyproxy.domain.usage import usage_period
from pixyproxy.entrypoints.errors import describe
from pixyproxy.entrypoints.mcp.backend import ReportProgress
from pixyproxy.entrypoints.mcp.previews import Preview
from pixyproxy.entrypoints.mcp.tools import PREVIEW_WIDTH, ToolFailure, search_limit
from pixyproxy.entrypoints.middleware.rate_limit import TOO_MANY

# A generation run as a job reports these steps (of this many) as its progress.
JOB_STEPS = {JobStatus.queued: 1, JobStatus.running: 2}
JOB_TOTAL = 3


def _failure(exc: Exception) -> ToolFailure:
    return ToolFailure(describe(exc).detail)


M = TypeVar("M", bound=GenerationRequest)


def _parsed(model: type[M], arguments: dict[str, Any]) -> M:
    """The arguments as the HTTP API reads a body: the same model, the same 422 message."""
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise _failure(RequestValidationError(errors)) from None


def webp_preview(data: bytes, side: int) -> bytes:
    """The image as a WebP whose longest side is at most `side` (never enlarged). Made on every call and
    kept nowhere, so made cheaply: a JPEG decoded at a fraction of its size, an integer box reduction
    before any filtering, a bilinear last step, and WebP's fastest method. An SVG is drawn first."""
    if looks_like_svg(data):
        try:
            width, height = svg_size(data)
            data = rasterise(data, max(1, min(width, side * width // max(width, height, 1))))
        except SvgError as exc:
            raise ToolFailure(f"the SVG cannot be drawn for its preview: {exc}") from None
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))
        shown: Image.Image = image
        if image.mode not in ("RGB", "RGBA"):
            shown = image.convert("RGBA" if "A" in image.mode or image.mode == "P" else "RGB")
        factor = max(shown.size) // side
        if factor >= 2:
            shown = shown.reduce(factor)
        shown.thumbnail((side, side), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        shown.save(out, format="WEBP", quality=75, method=0)
        return out.getvalue()


def _json(detail: ImageDetail) -> dict[str, Any]:
    return detail.model_dump(mode="json")


class InProcessTools:
    """ImageTools for one request: its caller (None with keys off), the client the rate limit counts
    (`key:<name>` or the peer address) and the base URL content links start with."""

    def __init__(self, container: Container, caller: Caller | None, client: str, base_url: str) -> None:
        self.container = container
        self.caller = caller
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.owner = caller.name if caller is not None else None
        self._early_previews: dict[str, asyncio.Future[bytes]] = {}

    async def _limit(self) -> None:
        """The HTTP API's per-key limit on generating routes; a POST to /mcp is not one of them."""
        limiter = self.container.rate_limiter()
        if limiter is None:
            return
        wait = await limiter.take(self.client)
        if wait > 0:
            raise ToolFailure(TOO_MANY.format(seconds=max(1, math.ceil(wait))))

    async def generate(self, arguments: dict[str, Any], progress: ReportProgress | None) -> dict[str, Any]:
        request = _parsed(JobRequest, arguments)
        try:
            await self._limit()
            if progress is None:
                return _json(await self._generate(request))
            return await self._as_job(request, progress)
        except ImageException as exc:
            raise _failure(exc) from None

    async def _generate(self, request: JobRequest) -> ImageDetail:
        """POST /image/'s use case in its two steps (as a job runs it), the chat's preview encoded from the
        made bytes while they are stored, so it adds next to no wait of its own."""
        generate = self.container.generate_image()
        checked = generate.check(request.image_request())
        paid = await generate.make(checked, self.caller)
        encode = anyio.to_thread.run_sync(webp_preview, paid.generated.data, PREVIEW_WIDTH)
        early = asyncio.ensure_future(encode)
        try:
            detail = await self.container.image_writer().store(checked, paid, self.caller)
        except BaseException:
            early.cancel()
            raise
        self._early_previews[str(detail.guid)] = early
        return detail

    async def _as_job(self, request: JobRequest, progress: ReportProgress) -> dict[str, Any]:
        """Run the generation as a job, reporting its status (and previews) until it ends; a call
        cancelled meanwhile cancels the job, which then stores nothing."""
        job = await self.container.submit_job()(request, self.caller)
        previews = 0
        try:
            stream = cast(AsyncGenerator[JobEvent, None], self.container.job_events()(job.id, self.caller))
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if event.name == "status" and event.data.status in JOB_STEPS:
                        step = JOB_STEPS[event.data.status]
                        await progress(step, JOB_TOTAL, f"job {job.id} {event.data.status}")
                    elif event.name == "partial_image":
                        previews += 1  # progress grows with each: 2.2, 2.4, 2.6 (at most 3 previews)
                        message = f"job {job.id} running: preview {previews} received"
                        shown = await self._streamed(f"{job.id}/{previews}", event.data["b64_json"])
                        await progress(2 + previews / 5, JOB_TOTAL, message, shown)
                    elif event.name == "done":
                        job = event.data
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not job.finished:
                    with contextlib.suppress(ImageException):  # it ended meanwhile
                        await self.container.cancel_job()(job.id, self.caller)
            raise
        if job.status is not JobStatus.succeeded or not job.images:
            detail = job.error.detail if job.error else f"the job ended {job.status}"
            raise ToolFailure(detail)
        await progress(JOB_TOTAL, JOB_TOTAL, f"job {job.id} succeeded")
        return job.images[0].model_dump(mode="json", exclude={"deleted"})

    async def _streamed(self, name: str, b64: str) -> Preview:
        """A streamed preview as the chat's previews are: a WebP of at most 512 px."""
        data = await anyio.to_thread.run_sync(webp_preview, base64.b64decode(b64), PREVIEW_WIDTH)
        return Preview(name, data, "image/webp")

    async def edit(self, guid: str, arguments: dict[str, Any]) -> dict[str, Any]:
        request = _parsed(EditRequest, arguments)
        try:
            await self._limit()
            detail = await self.container.edit_stored_image()(guid, request, self.caller)
        except ImageException as exc:
            raise _failure(exc) from None
        return _json(detail)

    async def get(self, guid: str) -> dict[str, Any]:
        return _json(await self._detail(guid))

    async def _detail(self, guid: str) -> ImageDetail:
        try:
            return await self.container.read_image()(guid, self.caller)
        except ImageException as exc:
            raise _failure(exc) from None

    async def search(self, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        limit = search_limit(arguments)
        try:
            filters = parse_filter(
                arguments.get("q"),
                arguments.get("model"),
                arguments.get("created_after"),
                arguments.get("created_before"),
            )
            items, _ = await self.container.list_images()(self.caller, limit, None, filters)
        except (ImageException, TypeError) as exc:
            raise ToolFailure(describe(exc).detail if isinstance(exc, ImageException) else str(exc)) from None
        return [_json(item) for item in items]

    async def page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        try:
            items, next_cursor = await self.container.list_images()(self.caller, limit, cursor)
        except ImageException as exc:
            raise _failure(exc) from None
        return [_json(item) for item in items], next_cursor

    async def models(self) -> list[dict[str, Any]]:
        """What GET /models lists: the catalogue's models (the generator's one model without a catalogue)."""
        generator = self.container.generator()
        describe_models = getattr(generator, "describe_models", None)
        if describe_models is None:
            return [{"id": generator.default_model, "default": True}]
        return [{"id": model["name"], "default": bool(model["default"])} for model in describe_models()]

    async def delete(self, guid: str) -> None:
        try:
            await self.container.delete_image()(guid, self.caller)
        except ImageException as exc:
            raise _failure(exc) from None

    async def usage(self, since: str | None, until: str | None) -> dict[str, Any]:
        for name, value in (("since", since), ("until", until)):
            if value is not None and not isinstance(value, str):
                raise ToolFailure(f"{name}: Input should be a valid string")
        try:
            start, end = usage_period(since, until, utc_now())
            report = await self.container.report_usage()(start, end, self.caller)
        except ImageException as exc:
            raise _failure(exc) from None
        return report.model_dump(mode="json")

    async def preview(self, detail: dict[str, Any], width: int) -> bytes:
        early = self._early_previews.pop(str(detail["guid"]), None) if width == PREVIEW_WIDTH else None
        if early is not None:
            with contextlib.suppress(Exception):  # made from what the provider sent; else from what is stored
                return await early
        image = ImageDetail.model_validate(detail)
        data = await self._bytes(image)
        if image.content_type == "image/webp" and max(image.width, image.height) <= width:
            return data  # already a WebP that small
        return await anyio.to_thread.run_sync(webp_preview, data, width)

    async def content(self, guid: str) -> tuple[bytes, str]:
        detail = await self._detail(guid)
        return await self._bytes(detail), detail.content_type

    async def _bytes(self, detail: ImageDetail) -> bytes:
        try:
            stream = await self.container.image_content().open(detail)
            try:
                return b"".join([chunk async for chunk in stream.chunks()])
            finally:
                await stream.aclose()
        except ImageException as exc:
            raise _failure(exc) from None

    async def link(self, detail: dict[str, Any]) -> str:
        image = ImageDetail.model_validate(detail)
        ttl = timedelta(seconds=self.container.settings().url_ttl_seconds)
        try:
            presigned = await self.container.image_content().url(image, ttl)
        except ImageException as exc:
            raise _failure(exc) from None
        return presigned or f"{self.base_url}/image/{image.guid}/content"

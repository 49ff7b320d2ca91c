"""The OpenAI-compatible face: OpenAI's Images API as its SDKs and tools (Open WebUI, LibreChat) call it,
so any of them can set base_url to PixyProxy. Every image made here goes through the same use cases as
any other (GenerateImage, EditUploads): stored, listed, metered, logged. This module translates HTTP.

- POST /v1/images/generations (JSON) and POST /v1/images/edits (multipart: `image` or `image[]` files,
  `mask`, `prompt` and the options) answer OpenAI's ImagesResponse, or with `stream` its server-sent
  events. `n` images are made concurrently and stored only once all of them are made: if one fails, the
  others are cancelled and nothing is stored. `X-PixyProxy-Cost` is their estimated cost added up (on a
  stream, only when the finished image is its first event: headers leave with it).
- Edits take uploaded bytes, not stored guids: the uploads are checked and sent to the generator, and
  only the result is stored (the uploads are the client's, not images this service made).
- GET /v1/models lists the catalogue's models (GET /models has what each takes).

Errors come out in OpenAI's shape (entrypoints/errors.py chooses it by the /v1 prefix).
"""

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import MAX_REFERENCES, PROMPT_CEILING, Caller, ImageDetail, PartialImage
from pixyproxy.domain.usecases.edit_uploads import read_uploads
from pixyproxy.domain.usecases.generate import Previews
from pixyproxy.domain.usecases.reading import ImageContent
from pixyproxy.domain.usecases.storing import JustStored
from pixyproxy.domain.usecases.validation import validated
from pixyproxy.entrypoints.dependencies import caller, services, settings
from pixyproxy.entrypoints.errors import describe
from pixyproxy.entrypoints.openai_errors import openai_error
from pixyproxy.entrypoints.openai_schemas import (
    EditFields,
    ImagesAnswer,
    ImagesBody,
    ModelCard,
    ModelList,
    openai_error_responses,
)
from pixyproxy.entrypoints.routes.models import catalogue_models
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.settings import Settings

router = APIRouter(tags=["openai-compatible"])
GENERATIONS, EDITS = "/v1/images/generations", "/v1/images/edits"
UPLOAD_PATHS = (EDITS, EDITS + "/")  # these take the larger body limit, PIXYPROXY_MAX_UPLOAD_BYTES
STARTED = int(time.time())  # a model card's `created`
OFFLOAD_BYTES = 1024 * 1024  # images above this are base64-encoded off the event loop
ONE_STREAMED = "n: stream=true makes one image; leave n out (or 1) when streaming"
_EVENT_STREAM = {
    "text/event-stream": {
        # Each server-sent event: its `event` name and its JSON `data` (schemathesis checks every one).
        "schema": {
            "type": "object",
            "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
            "required": ["data"],
        },
        "description": "With stream=true: `image_generation.partial_image` (or `image_edit.partial_image`) "
        "events, then `image_generation.completed` (`image_edit.completed`); `error` if it fails midway.",
    }
}

# A streamed generation: its previews in, the stored image (and its bytes) out.
Streamed = Callable[[Previews], Awaitable[list[JustStored]]]


def _json(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), headers=headers, media_type="application/json")


def _cost(details: list[ImageDetail]) -> dict[str, str]:
    """X-PixyProxy-Cost: the request's estimated cost in US dollars, its n images' added up; none when an
    image has no estimate (a partial sum would understate what was paid)."""
    costs = [d.estimated_cost_usd for d in details]
    if not costs or any(cost is None for cost in costs):
        return {}
    return {"X-PixyProxy-Cost": f"{sum(c for c in costs if c is not None):.6f}"}


# -- routes -------------------------------------------------------------------------------------------


@twin_routes(
    router,
    ["POST"],
    GENERATIONS,
    response_model=ImagesAnswer,
    response_model_exclude_none=True,
    summary="OpenAI's image generation: every image is stored",
    responses={200: {"content": _EVENT_STREAM}, **openai_error_responses(400, 429, 502, 503, 504)},
)
async def create_images(
    body: ImagesBody,
    request: Request,
    config: Settings = Depends(settings),
    who: Caller | None = Depends(caller),
) -> Response:
    container = services(request)
    generate = container.generate_image()
    generation = generate.check(body.domain_fields())  # refused before anything is made
    content = container.image_content()
    if body.stream:
        if (body.n or 1) != 1:
            raise InvalidImageRequest(ONE_STREAMED)
        return await _stream(
            "image_generation", body, lambda previews: generate.many(generation, 1, who, previews)
        )
    stored = await generate.many(generation, body.n or 1, who)
    return await _answer(request, content, config, body, stored)


EDIT_FORM = {
    "required": ["prompt", "image"],
    "properties": {
        "image": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "maxItems": MAX_REFERENCES + 1,
            "description": "1-16 PNG, WebP or JPEG files, as `image` or `image[]` parts; the first is the "
            "one changed, the others are references.",
        },
        "mask": {
            "type": "string",
            "format": "binary",
            "description": "A PNG of the first image's size; fully transparent pixels mark what to change.",
        },
        **{
            name: {k: v for k, v in schema.items() if k != "title"}
            for name, schema in EditFields.model_json_schema()["properties"].items()
        },
    },
}


@twin_routes(
    router,
    ["POST"],
    EDITS,
    response_model=ImagesAnswer,
    response_model_exclude_none=True,
    summary="OpenAI's image edit (multipart uploads): the result is stored",
    description="The uploads are checked and sent to the generator; only the result is stored.",
    responses={200: {"content": _EVENT_STREAM}, **openai_error_responses(400, 429, 502, 503, 504)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", **EDIT_FORM},
                    "encoding": {"image": {"contentType": "image/png, image/webp, image/jpeg"}},
                }
            },
        }
    },
)
async def edit_images(
    request: Request,
    config: Settings = Depends(settings),
    who: Caller | None = Depends(caller),
) -> Response:
    container = services(request)
    edit_uploads = container.edit_uploads()
    body, images, mask = await _read_edit_form(request)
    edit = edit_uploads.check(body.domain_fields())
    if body.stream and (body.n or 1) != 1:
        raise InvalidImageRequest(ONE_STREAMED)
    uploads = await read_uploads(images, mask)
    content = container.image_content()
    if body.stream:
        return await _stream(
            "image_edit", body, lambda previews: edit_uploads(edit, uploads, 1, who, previews)
        )
    stored = await edit_uploads(edit, uploads, body.n or 1, who)
    return await _answer(request, content, config, body, stored)


@twin_routes(
    router,
    ["GET"],
    "/v1/models",
    response_model=ModelList,
    summary="The catalogue's models (pixyproxy-offline on the embedded default)",
    responses=openai_error_responses(),
)
async def list_models(request: Request) -> Response:
    return _json(ModelList(data=[_card(m.name) for m in catalogue_models(request)]).model_dump())


@twin_routes(
    router,
    ["GET"],
    "/v1/models/{model}",
    response_model=ModelCard,
    summary="One of the catalogue's models, by its name",
    responses=openai_error_responses(404),
)
async def get_model(model: str, request: Request) -> Response:
    if model not in {m.name for m in catalogue_models(request)}:
        raise HTTPException(404, f"The model '{model[:100]}' does not exist here; GET /v1/models lists it")
    return _json(_card(model).model_dump())


def _card(name: str) -> ModelCard:
    return ModelCard(id=name, created=STARTED, owned_by="pixyproxy")


# -- answers ------------------------------------------------------------------------------------------


async def _b64(data: bytes) -> str:
    if len(data) > OFFLOAD_BYTES:
        return await asyncio.to_thread(lambda: base64.b64encode(data).decode())
    return base64.b64encode(data).decode()


async def _url(request: Request, content: ImageContent, config: Settings, detail: ImageDetail) -> str:
    presigned = await content.url(detail, timedelta(seconds=config.url_ttl_seconds))
    return presigned or str(request.url_for("image_content", guid=str(detail.guid)))


def _usage(details: list[ImageDetail]) -> dict[str, Any] | None:
    """Every image's usage added up, as OpenAI reports one usage for a request of n."""

    def add(total: dict[str, Any], part: dict[str, Any]) -> None:
        for key, value in part.items():
            if isinstance(value, dict):
                add(total.setdefault(key, {}), value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value

    reported = [d.usage for d in details if d.usage]
    if not reported:
        return None
    total: dict[str, Any] = {}
    for usage in reported:
        add(total, usage)
    return total


def _report(detail: ImageDetail) -> dict[str, Any]:
    """What an answer says of the images made: background, format, quality, size."""
    report: dict[str, Any] = {
        "output_format": detail.output_format or "png",
        "size": f"{detail.width}x{detail.height}",
    }
    if detail.background in ("transparent", "opaque"):
        report["background"] = detail.background
    if detail.quality:
        report["quality"] = detail.quality
    return report


async def _answer(
    request: Request, content: ImageContent, config: Settings, body: ImagesBody, stored: list[JustStored]
) -> Response:
    """The images just stored; b64_json from the bytes stored, not read back from storage."""
    details = [image.detail for image in stored]
    data = []
    for image in stored:
        detail = image.detail
        item: dict[str, Any] = {"guid": str(detail.guid)}
        if body.response_format == "url":
            item["url"] = await _url(request, content, config, detail)
        else:
            item["b64_json"] = await _b64(image.data)
        if detail.revised_prompt:
            item["revised_prompt"] = detail.revised_prompt
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data, **_report(details[0])}
    if usage := _usage(details):
        answer["usage"] = usage
    return _json(answer, _cost(details))


# -- streaming ----------------------------------------------------------------------------------------


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


async def _stream(prefix: str, body: ImagesBody, streamed: Streamed) -> Response:
    """OpenAI's server-sent events. The answer starts with the first event, so a failure before any
    (a refusal, a rate limit) is still a plain error answer; one after it is an `error` event. A client
    that goes away cancels the generation, and nothing is stored."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_partial(partial: PartialImage) -> None:
        await queue.put(("partial", partial))

    async def produce() -> None:
        try:
            (stored,) = await streamed(Previews(body.partial_images or 0, on_partial))
            await queue.put(("done", stored))
        except Exception as exc:
            await queue.put(("error", exc))

    task = asyncio.ensure_future(produce())
    try:
        first = await queue.get()
    except BaseException:
        task.cancel()
        raise
    if first[0] == "error":
        raise first[1]

    asked = {
        "background": body.background or "auto",
        "quality": body.quality or "auto",
        "size": body.size or "auto",
    }

    async def events() -> AsyncIterator[bytes]:
        kind, value = first
        try:
            while True:
                if kind == "partial":
                    yield _event(
                        f"{prefix}.partial_image",
                        {
                            "type": f"{prefix}.partial_image",
                            "b64_json": await _b64(value.data),
                            "partial_image_index": value.index,
                            "created_at": int(time.time()),
                            **asked,
                            "output_format": value.output_format,
                        },
                    )
                elif kind == "done":
                    yield _event(f"{prefix}.completed", await _completed(prefix, value, asked))
                    return
                else:
                    _, error = openai_error(describe(value))
                    yield _event("error", error)
                    return
                kind, value = await queue.get()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # The headers leave with the first event: the cost is known then only if no preview came before it.
    headers = {"Cache-Control": "no-cache", **(_cost([first[1].detail]) if first[0] == "done" else {})}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _completed(prefix: str, stored: JustStored, asked: dict[str, str]) -> dict[str, Any]:
    detail = stored.detail
    # The event's usage is required in OpenAI's schema: zeros where the generator reported none.
    usage = _usage([detail]) or {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": 0,
        "total_tokens": 0,
    }
    return {
        "type": f"{prefix}.completed",
        "b64_json": await _b64(stored.data),
        "created_at": int(time.time()),
        **asked,
        **_report(detail),
        "usage": usage,
        "guid": str(detail.guid),
    }


# -- the edit form ------------------------------------------------------------------------------------


async def _read_edit_form(request: Request) -> tuple[EditFields, list[bytes], bytes | None]:
    """(the text fields, the images' bytes, the mask's bytes) of OpenAI's multipart edit body."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidImageRequest(
            "body: must be multipart/form-data with image (or image[]) files, an optional mask and a prompt"
        )
    try:
        form = await request.form(
            max_files=MAX_REFERENCES + 2, max_fields=64, max_part_size=PROMPT_CEILING * 4 + 1024
        )
    except HTTPException as exc:  # the multipart parser's refusal of a malformed body
        raise InvalidImageRequest(f"body: {exc.detail}") from None
    images: list[bytes] = []
    mask: bytes | None = None
    text: dict[str, str] = {}
    try:
        for name, value in form.multi_items():
            if name in ("image", "image[]", "mask"):
                if not isinstance(value, UploadFile):
                    raise InvalidImageRequest(f"{name.removesuffix('[]')}: must be a file")
                if name == "mask":
                    if mask is not None:
                        raise InvalidImageRequest("mask: send one mask")
                    mask = await value.read()
                else:
                    images.append(await value.read())
            elif isinstance(value, str):
                if name in text:
                    raise InvalidImageRequest(f"{name}: sent twice")
                text[name] = value
    finally:
        await form.close()
    if not images:
        raise InvalidImageRequest("image: required: one or more image files (as image or image[])")
    return validated(EditFields, text), images, mask

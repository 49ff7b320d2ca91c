"""The agreed API: generate, list, details, content, url. Handlers translate HTTP to use cases and back.

Handlers answer a `Response` they build (the body encoded once, by pydantic-core) rather than a model for
FastAPI to validate again; `response_model` still documents them. The two hottest reads, details and
content, are DirectRoutes: their only inputs are the guid and a few headers.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter

from pixyproxy.domain.cursor import MAX_CURSOR_LENGTH
from pixyproxy.domain.models import Caller, GenerationRequest, ImageDetail
from pixyproxy.domain.search import MAX_QUERY_LENGTH, parse_filter
from pixyproxy.domain.usecases.listing import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from pixyproxy.entrypoints.content import answer_content
from pixyproxy.entrypoints.dependencies import caller, idempotency_key, services, settings
from pixyproxy.entrypoints.middleware.api_keys import CALLER_SCOPE_KEY
from pixyproxy.entrypoints.routes.direct import DirectRoute
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import ContentUrl, error_responses
from pixyproxy.entrypoints.stored_body import body_response
from pixyproxy.entrypoints.variant_content import VARIANT_PARAMETERS, variant_content, variant_url
from pixyproxy.settings import Settings

router = APIRouter(tags=["images"])
IMAGE_TYPES: dict[str, dict[str, Any]] = {
    "image/png": {},
    "image/webp": {},
    "image/jpeg": {},
    "image/avif": {},
    "image/gif": {},
    "image/svg+xml": {},
}
_detail_json = TypeAdapter(ImageDetail).dump_json
_list_json = TypeAdapter(list[ImageDetail]).dump_json


def cost_header(detail: ImageDetail) -> dict[str, str] | None:
    """X-PixyProxy-Cost: the generation's estimated cost in US dollars, where it has one."""
    if detail.estimated_cost_usd is None:
        return None
    return {"X-PixyProxy-Cost": f"{detail.estimated_cost_usd:.6f}"}


def json_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, headers=headers, media_type="application/json")


# The hottest reads first: the router tries routes in order.
@twin_routes(
    router,
    ["GET"],
    "/image/{guid:image_guid}",
    response_model=ImageDetail,
    summary="An image's details",
    responses=error_responses(404, 503),
    route_class_override=DirectRoute,
)
async def get_image(request: Request, guid: str) -> Response:
    detail = await services(request).read_image()(guid, request.scope.get(CALLER_SCOPE_KEY))
    return json_response(_detail_json(detail))


@twin_routes(
    router,
    ["GET", "HEAD"],
    "/image/{guid:image_guid}/content",
    response_class=Response,
    summary="The image's bytes",
    description="Strong ETag (SHA-256), immutable caching, If-None-Match, HEAD and single byte ranges. "
    "`width` and `format` ask for a variant (made once, then served like the original).",
    responses={
        200: {"content": IMAGE_TYPES, "description": "The image in the format it was made in, or a variant."},
        206: {"content": IMAGE_TYPES, "description": "A byte range of the image."},
        **error_responses(304, 404, 416, 422, 503),
    },
    route_class_override=DirectRoute,
    openapi_extra=VARIANT_PARAMETERS,
)
async def image_content(request: Request, guid: str) -> Response:
    container = services(request)
    detail = await container.read_image()(guid, request.scope.get(CALLER_SCOPE_KEY))
    if request.scope["query_string"] or container.settings().negotiate_format:
        return await variant_content(request, container, detail)  # a plain read skips all of it
    headers = request.headers
    answer = answer_content(
        detail, request.method, headers.get("if-none-match"), headers.get("if-range"), headers.get("range")
    )
    if not answer.send_body:
        response = Response(status_code=answer.status)
    else:
        stream = await container.image_content().open(detail, answer.byte_range)
        length = answer.byte_range.length if answer.byte_range else detail.size_bytes
        response = await body_response(
            stream, length, answer.byte_range is None, answer.status, request.scope
        )
    response.raw_headers = answer.headers  # exactly the planned headers (length, type, ETag, range)
    return response


@twin_routes(
    router,
    ["POST"],
    "/image/",
    response_model=ImageDetail,
    summary="Generate an image from a prompt and store it",
    responses=error_responses(409, 413, 422, 502, 503, 504),
)
async def create_image(
    body: GenerationRequest,
    request: Request,
    key: str | None = Depends(idempotency_key),
    who: Caller | None = Depends(caller),
) -> Response:
    detail = await services(request).generate_image()(body, who, key)
    return json_response(_detail_json(detail), cost_header(detail))


@twin_routes(
    router,
    ["GET"],
    "/image/",
    response_model=list[ImageDetail],
    summary="List images, newest first",
    description='Pages follow the `Link: <...>; rel="next"` header (it keeps the filters); the body is '
    "always a plain array. `q`, `model`, `created_after` and `created_before` combine.",
    responses=error_responses(422, 503),
)
async def list_images(
    request: Request,
    limit: int = Query(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="Images per page."),
    cursor: str | None = Query(
        default=None, max_length=MAX_CURSOR_LENGTH, description="From the previous Link header."
    ),
    q: str | None = Query(
        default=None,
        max_length=MAX_QUERY_LENGTH,
        description="Words of the prompt, each required (any case or accent; words of 3+ letters).",
    ),
    model: str | None = Query(default=None, max_length=100, description="Only images made by this model."),
    created_after: str | None = Query(
        default=None, max_length=40, description="RFC 3339, e.g. 2026-11-24T12:00:00Z (exclusive)."
    ),
    created_before: str | None = Query(default=None, max_length=40, description="RFC 3339 (exclusive)."),
    who: Caller | None = Depends(caller),
) -> Response:
    filters = parse_filter(q, model, created_after, created_before)
    items, next_cursor = await services(request).list_images()(who, limit, cursor, filters)
    headers = None
    if next_cursor:
        next_url = request.url.include_query_params(limit=limit, cursor=next_cursor)
        headers = {"Link": f'<{next_url}>; rel="next"'}
    return json_response(_list_json(items), headers)


@twin_routes(
    router,
    ["GET"],
    "/image/{guid:image_guid}/url",
    response_model=ContentUrl,
    summary="A URL that serves the image's bytes (presigned on S3)",
    responses=error_responses(404, 422, 503),
    openapi_extra=VARIANT_PARAMETERS,
)
async def image_url(
    guid: str,
    request: Request,
    config: Settings = Depends(settings),
    who: Caller | None = Depends(caller),
) -> ContentUrl:
    container = services(request)
    detail = await container.read_image()(guid, who)
    ttl = timedelta(seconds=config.url_ttl_seconds)
    if request.scope["query_string"]:  # width and format, documented by VARIANT_PARAMETERS
        return await variant_url(request, container, detail, ttl)
    presigned = await container.image_content().url(detail, ttl)
    if presigned is None:
        return ContentUrl(url=str(request.url_for("image_content", guid=str(detail.guid))), expires_at=None)
    return ContentUrl(url=presigned, expires_at=datetime.now(UTC) + ttl)


@twin_routes(
    router,
    ["DELETE"],
    "/image/{guid:image_guid}",
    status_code=204,
    response_class=Response,
    summary="Delete an image: its record, its bytes and every variant",
    responses=error_responses(404, 503),
)
async def delete_image(guid: str, request: Request, who: Caller | None = Depends(caller)) -> Response:
    await services(request).delete_image()(guid, who)
    return Response(status_code=204)

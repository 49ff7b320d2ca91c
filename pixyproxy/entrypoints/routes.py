"""The agreed API. Handlers translate HTTP to service calls and back; nothing else."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from pixyproxy.container import Container
from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import GenerationRequest, ImageDetail
from pixyproxy.domain.service import ImageService
from pixyproxy.entrypoints.content_answer import answer_content
from pixyproxy.entrypoints.request_context import request_id_var
from pixyproxy.entrypoints.schemas import ContentUrl, Health, NotReady, Ready, error_responses

router = APIRouter()


def route(methods: list[str], path: str, **options) -> Callable:
    """Register a path with and without its trailing slash: clients do not follow redirects."""

    def register(endpoint: Callable) -> Callable:
        twin = path.rstrip("/") if path.endswith("/") else path + "/"
        for method in methods:  # one route per method: each gets its own (unique) operationId
            router.add_api_route(path, endpoint, methods=[method], **options)
            router.add_api_route(twin, endpoint, methods=[method], include_in_schema=False, **options)
        return endpoint

    return register


@route(
    ["POST"],
    "/image/",
    response_model=ImageDetail,
    summary="Generate an image from a prompt and store it",
    responses=error_responses(409, 413, 422, 502, 503, 504),
    tags=["images"],
)
@inject
async def create_image(
    body: GenerationRequest,
    request: Request,
    idempotency_key: str | None = Header(
        default=None,
        max_length=255,
        description="Send the same key again to get the first image back instead of paying twice.",
    ),
    service: ImageService = Depends(Provide[Container.image_service]),
) -> ImageDetail:
    if idempotency_key is not None and len(request.headers.getlist("idempotency-key")) > 1:
        # Two keys are ambiguous: whichever one we picked, the client might retry with the other.
        raise InvalidImageRequest("header.idempotency-key: send exactly one Idempotency-Key")
    return await service.create(body, idempotency_key)


@route(
    ["GET"],
    "/image/",
    response_model=list[ImageDetail],
    summary="List images, newest first",
    description='Pages follow the `Link: <...>; rel="next"` header; the body is always a plain array.',
    responses=error_responses(422, 503),
    tags=["images"],
)
@inject
async def list_images(
    request: Request,
    response: Response,
    limit: int = Query(default=100, ge=1, le=1000, description="Images per page."),
    cursor: str | None = Query(default=None, max_length=200, description="From the previous Link header."),
    service: ImageService = Depends(Provide[Container.image_service]),
) -> list[ImageDetail]:
    items, next_cursor = await service.list_images(limit, cursor)
    if next_cursor:
        next_url = request.url.include_query_params(limit=limit, cursor=next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return items


@route(
    ["GET"],
    "/image/{guid}",
    response_model=ImageDetail,
    summary="An image's details",
    responses=error_responses(404, 503),
    tags=["images"],
)
@inject
async def get_image(
    guid: str, service: ImageService = Depends(Provide[Container.image_service])
) -> ImageDetail:
    return await service.get(guid)


@route(
    ["GET", "HEAD"],
    "/image/{guid}/content",
    response_class=Response,
    summary="The image's PNG bytes",
    description="Strong ETag (SHA-256), immutable caching, If-None-Match, HEAD and single byte ranges.",
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG."},
        206: {"content": {"image/png": {}}, "description": "A byte range of the PNG."},
        **error_responses(304, 404, 416, 503),
    },
    tags=["images"],
)
@inject
async def image_content(
    guid: str,
    request: Request,
    service: ImageService = Depends(Provide[Container.image_service]),
) -> Response:
    detail = await service.get(guid)
    answer = answer_content(
        detail,
        request.method,
        request.headers.get("if-none-match"),
        request.headers.get("if-range"),
        request.headers.get("range"),
    )
    if not answer.send_body:
        response = Response(status_code=answer.status)
    else:
        stream = await service.open_content(detail, answer.byte_range)
        response = StreamingResponse(stream.chunks(), status_code=answer.status)
    response.raw_headers = list(answer.headers)  # exactly the planned headers, as the hot path sends
    return response


@route(
    ["GET"],
    "/image/{guid}/url",
    response_model=ContentUrl,
    summary="A URL that serves the image's bytes (presigned on S3)",
    responses=error_responses(404, 503),
    tags=["images"],
)
@inject
async def image_url(
    guid: str,
    request: Request,
    service: ImageService = Depends(Provide[Container.image_service]),
    ttl_seconds: int = Depends(Provide[Container.settings.provided.url_ttl_seconds]),
) -> ContentUrl:
    detail = await service.get(guid)
    ttl = timedelta(seconds=ttl_seconds)
    presigned = await service.content_url(detail, ttl)
    if presigned is None:
        return ContentUrl(url=str(request.url_for("image_content", guid=str(detail.guid))), expires_at=None)
    return ContentUrl(url=presigned, expires_at=datetime.now(UTC) + ttl)


@router.get("/healthz", response_model=Health, summary="The process is alive (no I/O)", tags=["operations"])
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Dependencies are reachable",
    responses={503: {"model": NotReady, "description": "A dependency is not reachable."}},
    tags=["operations"],
)
@inject
async def readyz(service: ImageService = Depends(Provide[Container.image_service])) -> Response:
    readiness = await service.readiness()
    if readiness.ready:
        return JSONResponse(Ready(status="ready", checks=readiness.checks).model_dump())
    failing = ", ".join(f"{name}: {state}" for name, state in readiness.checks.items() if state != "ok")
    body = NotReady(
        detail=f"not ready ({failing})",
        code="not_ready",
        request_id=request_id_var.get(),
        checks=readiness.checks,
    )
    return JSONResponse(body.model_dump(), status_code=503)

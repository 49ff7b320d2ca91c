"""`?width=&format=` on an image's content and url: find or make the variant, then serve it like the
original (its own strong ETag, immutable caching, 304, HEAD, Range) through answer_content.

Only requests with a query string (or with format negotiation on) come here, so a plain content read
costs what it did.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

from fastapi import Request, Response

from pixyproxy.container import Container
from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.variants import (
    VARIANT_FORMATS,
    WIDTHS,
    Variant,
    VariantSpec,
    negotiate,
    parse_variant,
    plan,
)
from pixyproxy.entrypoints.content import answer_content
from pixyproxy.entrypoints.schemas import ContentUrl
from pixyproxy.entrypoints.stored_body import body_response

_VARY = (b"vary", b"accept")
# DirectRoutes take no query parameters of their own: documented here, checked by parse_variant.
VARIANT_PARAMETERS = {
    "parameters": [
        {
            "name": "width",
            "in": "query",
            "required": False,
            "description": "Scale to this width, keeping the aspect ratio (never above the original's).",
            "schema": {"type": "integer", "enum": list(WIDTHS)},
        },
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "Serve in this format; without it the original's (or, with "
            "PIXYPROXY_NEGOTIATE_FORMAT=true, the best the Accept header names).",
            "schema": {"type": "string", "enum": list(VARIANT_FORMATS)},
        },
    ]
}


def _query(raw: bytes) -> dict[str, str]:
    """name -> value (the last one wins, as in Starlette's QueryParams), without building a multidict:
    this runs on every variant read."""
    found = {}
    for part in raw.split(b"&"):
        name, _, value = part.decode("latin-1").partition("=")
        if b"%" in part or b"+" in part:
            name, value = unquote_plus(name), unquote_plus(value)
        found[name] = value
    return found


async def variant_content(request: Request, container: Container, detail: ImageDetail) -> Response:
    query = _query(request.scope["query_string"])
    spec = parse_variant(query.get("width"), query.get("format"))
    negotiated = spec.format is None and container.settings().negotiate_format
    if negotiated:
        spec = VariantSpec(spec.width, negotiate(request.headers.get("accept")))
    planned = plan(detail, spec)
    extra = [_VARY] if negotiated else []
    headers = request.headers
    if planned is None:  # the original itself
        served: ImageDetail | Variant = detail
        data = None
    else:
        served, data = await container.image_variants().find_or_make(detail, planned)
    answer = answer_content(
        served, request.method, headers.get("if-none-match"), headers.get("if-range"), headers.get("range")
    )
    if not answer.send_body:
        response = Response(status_code=answer.status)
    elif data is not None:  # just read or made: served from memory
        part = answer.byte_range
        response = Response(data[part.start : part.end + 1] if part else data, status_code=answer.status)
    else:
        if isinstance(served, Variant):
            stream = await container.image_variants().open(detail, served, answer.byte_range)
        else:
            stream = await container.image_content().open(detail, answer.byte_range)
        length = answer.byte_range.length if answer.byte_range else served.size_bytes
        whole = answer.byte_range is None
        response = await body_response(stream, length, whole, answer.status, request.scope)
    response.raw_headers = answer.headers + extra
    return response


async def variant_url(
    request: Request,
    container: Container,
    detail: ImageDetail,
    ttl: timedelta,
) -> ContentUrl:
    spec = parse_variant(request.query_params.get("width"), request.query_params.get("format"))
    planned = plan(detail, spec)
    query = {k: v for k, v in (("width", spec.width), ("format", spec.format)) if v is not None}
    content = request.url_for("image_content", guid=str(detail.guid)).include_query_params(**query)
    if planned is None:
        presigned = await container.image_content().url(detail, ttl)
    else:
        variants = container.image_variants()
        variant, _ = await variants.find_or_make(detail, planned)
        presigned = await variants.url(variant, ttl)
    if presigned is None:
        return ContentUrl(url=str(content), expires_at=None)
    return ContentUrl(url=presigned, expires_at=datetime.now(UTC) + ttl)

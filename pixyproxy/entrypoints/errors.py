"""The single exception handler: every error becomes `{"detail", "code", "request_id"}` JSON.

The HTTP mapping of domain exceptions lives here, not in the domain.
"""

import logging
import math
from collections.abc import Iterator

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from pixyproxy.domain import errors as domain
from pixyproxy.entrypoints.request_context import request_id_var

log = logging.getLogger(__name__)

# Most specific first: the first class an exception is an instance of decides its status.
DOMAIN_STATUS: list[tuple[type[domain.ImageException], int]] = [
    (domain.ImageNotFound, 404),
    (domain.PayloadTooLarge, 413),
    (domain.InvalidImageRequest, 422),
    (domain.IdempotencyConflict, 409),
    (domain.ContentPolicyViolation, 422),
    (domain.GeneratorTimeout, 504),
    (domain.GeneratorRateLimited, 503),
    (domain.GeneratorError, 502),
    (domain.DependencyUnavailable, 503),
]
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
}
UNEXPECTED = "An unexpected error occurred. Quote the request id when reporting it."


NOT_JSON = "the body is not valid JSON: it must be UTF-8 encoded JSON, sent as application/json"
NOT_AN_OBJECT = 'the body must be a JSON object such as {"prompt": "..."}, sent as application/json'


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        if tuple(error.get("loc", ())) == ("body",) and error.get("type") != "json_invalid":
            return NOT_AN_OBJECT
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def describe(exc: Exception) -> tuple[int, str, str, dict[str, str]]:
    """(status, code, detail, extra headers) for any exception."""
    if isinstance(exc, domain.ImageException):
        status = next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 500)
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if status == 503 and isinstance(exc, domain.GeneratorRateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(retry_after or 1)))
        if status == 500:
            log.error("unmapped domain error %s", type(exc).__name__, exc_info=exc)
        return status, exc.code, exc.message, headers
    if isinstance(exc, RequestValidationError):
        return 422, "invalid_request", _validation_message(exc), {}
    if isinstance(exc, HTTPException) and exc.status_code == 400 and isinstance(exc.__cause__, Exception):
        # FastAPI's 400 for a body it cannot parse (not UTF-8, nested too deep): 422 like other bad JSON.
        return 422, "invalid_request", NOT_JSON, {}
    if isinstance(exc, HTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return exc.status_code, code, str(exc.detail), dict(exc.headers or {})
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return 500, "internal_error", UNEXPECTED, {}


def render(exc: Exception) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, code, detail, headers = describe(exc)
    body = orjson.dumps({"detail": detail, "code": code, "request_id": request_id_var.get()})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw.append((b"x-content-type-options", b"nosniff"))  # errors are never to be sniffed as HTML
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return status, raw, body


async def handle_error(request: Request, exc: Exception) -> Response:
    """The app's one exception handler, registered for every exception type FastAPI dispatches."""
    status, headers, body = render(exc)
    response = Response(content=body, status_code=status, media_type="application/json")
    for name, value in headers:
        if name not in (b"content-type", b"content-length"):
            response.headers[name.decode()] = value.decode()
    if status == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (one route per method may share a path)."""
    allowed: set[str] = set()
    for candidate in _leaf_routes(request.app.router.routes):
        match, _ = candidate.matches(request.scope)
        if match is not Match.NONE:
            allowed.update(getattr(candidate, "methods", None) or ())
    return sorted(allowed)


def _leaf_routes(routes) -> Iterator:
    """The routes themselves, looking inside included routers (the app includes ours without a prefix)."""
    for candidate in routes:
        nested = getattr(getattr(candidate, "original_router", candidate), "routes", None)
        if nested is not None and not hasattr(candidate, "methods"):
            yield from _leaf_routes(nested)
        else:
            yield candidate

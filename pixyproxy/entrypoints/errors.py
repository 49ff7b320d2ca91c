"""The one way out for every error: whatever raised it, `error_response` writes the JSON answer
`{"detail", "code", "request_id"}`. Exception handlers (inside routing) and the error middleware (around
the middleware that refuses requests) both call it; nothing else writes an error body.

The HTTP mapping of domain exceptions lives here, not in the domain.
"""

import logging
import math

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from pixyproxy.domain import errors as domain
from pixyproxy.entrypoints.described import Described
from pixyproxy.entrypoints.jsonrpc_errors import is_mcp_path, jsonrpc_error
from pixyproxy.entrypoints.openai_errors import is_openai_path, openai_error
from pixyproxy.entrypoints.request_id import request_id_var

log = logging.getLogger(__name__)

# Most specific first: the first class an exception is an instance of decides its status.
DOMAIN_STATUS: list[tuple[type[domain.ImageException], int]] = [
    (domain.ImageNotFound, 404),
    (domain.PayloadTooLarge, 413),
    (domain.InvalidImageRequest, 422),
    (domain.IdempotencyConflict, 409),
    (domain.BudgetExceeded, 429),
    (domain.JobAlreadyFinished, 409),
    (domain.ContentPolicyViolation, 422),
    (domain.GeneratorTimeout, 504),
    (domain.GeneratorRateLimited, 503),
    (domain.GeneratorModelUnavailable, 502),  # our configuration, not the client's request
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


def describe(exc: Exception) -> Described:
    """Status, code, detail and extra headers for any exception; logs only what is our fault."""
    if isinstance(exc, domain.ImageException):
        status = next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 500)
        headers = {}
        if isinstance(exc, domain.GeneratorRateLimited | domain.BudgetExceeded):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after or 1)))
        if status == 500:
            log.error("unmapped domain error %s", type(exc).__name__, exc_info=exc)
        return Described(status, exc.code, exc.message, headers)
    if isinstance(exc, RequestValidationError):
        return Described(422, "invalid_request", _validation_message(exc))
    if isinstance(exc, HTTPException) and exc.status_code == 400 and isinstance(exc.__cause__, Exception):
        # FastAPI's 400 for a body it could not read: what stopped the read (the body limit) speaks for
        # itself; a body it cannot parse (not UTF-8, nested too deep) is a 422 like other bad JSON.
        if isinstance(exc.__cause__, domain.ImageException):
            return describe(exc.__cause__)
        return Described(422, "invalid_request", NOT_JSON)
    if isinstance(exc, HTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return Described(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return Described(500, "internal_error", UNEXPECTED)


def error_response(exc: Exception, path: str = "") -> Response:
    """The answer for `exc` on a request for `path`: OpenAI's error shape on the /v1 face, ours elsewhere."""
    described = describe(exc)
    status = described.status
    if is_openai_path(path):
        status, shaped = openai_error(described)
    elif is_mcp_path(path):
        shaped = jsonrpc_error(status, described.code, described.detail, request_id_var.get())
    else:
        shaped = {"detail": described.detail, "code": described.code, "request_id": request_id_var.get()}
    # Errors are never to be sniffed as HTML.
    headers = {"X-Content-Type-Options": "nosniff", **described.headers}
    return Response(orjson.dumps(shaped), status, headers, media_type="application/json")

"""The /v1 face's errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
statuses OpenAI's SDKs turn into their own exceptions (400 BadRequestError, 401 AuthenticationError, 404
NotFoundError, 429 RateLimitError, 5xx InternalServerError).

Only the shape differs from the rest of the API: what an error means (status, code, message, headers) is
`errors.describe(exc)`, and `errors.error_response` picks this shape by path, so refusals raised by
middleware (401, 429, 413) on /v1 come out in it too.
"""

import re
from typing import Any

from pixyproxy.entrypoints.described import Described

PREFIX = "/v1"
# OpenAI answers every request it cannot take with a 400; PixyProxy's 422 and 413 are such requests.
STATUS = {422: 400, 413: 400}
# OpenAI's names for the codes its clients look at; other codes stay PixyProxy's own.
CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}
# "size: each side must be ..." names its parameter; header., query. and body: are not parameters.
_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\])?)(?:\.[^\s:]+)?: ")
_NOT_PARAMS = frozenset({"body", "header", "query", "path"})


def is_openai_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_type(status: int) -> str:
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(described: Described) -> tuple[int, dict[str, Any]]:
    """(status, body) of an error on /v1."""
    status = STATUS.get(described.status, described.status)
    match = _PARAM.match(described.detail) if status == 400 else None
    param = match.group(1) if match and match.group(1) not in _NOT_PARAMS else None
    error = {
        "message": described.detail,
        "type": error_type(status),
        "param": param,
        "code": CODES.get(described.code, described.code),
    }
    return status, {"error": error}

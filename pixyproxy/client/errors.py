"""Typed exceptions. Every error the server answers carries its `code`, `detail` and `request_id`.

Catch `PixyProxyError` for everything, `APIError` for an answer from the server, or a subclass for one case:

    try:
        image = client.generate("a red fox")
    except ContentPolicyViolation as exc:
        ...  # exc.detail is the reason, exc.request_id is what support asks for
"""

import httpx


class PixyProxyError(Exception):
    """Base of every exception the client raises."""


class PixyProxyConnectionError(PixyProxyError):
    """The server could not be reached, or the connection broke, after the client's retries."""


class PixyProxyTimeout(PixyProxyConnectionError):
    """The server did not answer within the timeout, after the client's retries."""


class APIError(PixyProxyError):
    """The server answered with an error status."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        request_id: str | None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after
        suffix = f", request id {request_id}" if request_id else ""
        super().__init__(f"{detail} (HTTP {status_code} {code}{suffix})")


class InvalidRequest(APIError):
    """422: the request is not valid (prompt, model, size, quality, cursor...)."""


class ContentPolicyViolation(InvalidRequest):
    """422 content_policy_violation: the generator refused the prompt."""


class AuthenticationError(APIError):
    """401: the API key is missing or wrong (set PIXYPROXY_API_KEY or pass api_key=)."""


class PermissionDenied(APIError):
    """403."""


class NotFound(APIError):
    """404: no image has that guid (or no job that id)."""


class IdempotencyConflict(APIError):
    """409: the Idempotency-Key was already used with a different request."""


class JobFinished(APIError):
    """409 job_finished: the job has already ended, so it cannot be canceled."""


class PayloadTooLarge(APIError):
    """413: the request body is too large."""


class RateLimited(APIError):
    """429: this API key sent too many requests; `retry_after` says when to try again."""


class ServerError(APIError):
    """500 or another 5xx not listed below."""


class GeneratorError(ServerError):
    """502: the image generator failed; nothing was stored."""


class GeneratorTimeout(ServerError):
    """504: the image generator did not answer in time; nothing was stored."""


class ServiceUnavailable(ServerError):
    """503: a dependency (metadata, storage) is unavailable; `retry_after` may say when to try again."""


class GeneratorRateLimited(ServiceUnavailable):
    """503 generator_rate_limited: the provider is rate limiting PixyProxy."""


_BY_CODE: dict[str, type[APIError]] = {
    "content_policy_violation": ContentPolicyViolation,
    "generator_rate_limited": GeneratorRateLimited,
    "generator_timeout": GeneratorTimeout,
    "idempotency_conflict": IdempotencyConflict,
    "image_not_found": NotFound,
    "job_finished": JobFinished,
    "job_not_found": NotFound,
}
_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: IdempotencyConflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    502: GeneratorError,
    503: ServiceUnavailable,
    504: GeneratorTimeout,
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare; treated as unknown


def error_from_response(response: httpx.Response) -> APIError:
    """The typed exception for an error response; a body that is not the server's JSON (say a proxy's
    HTML page) still gives an APIError with the status and the start of the text."""
    request_id = response.headers.get("x-request-id")
    code, detail = f"http_{response.status_code}", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        detail = str(body.get("detail") or "")
        request_id = str(body.get("request_id") or request_id or "") or None
    if not detail:
        text = " ".join(response.text.split())[:200]
        detail = text or response.reason_phrase or f"HTTP {response.status_code}"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else APIError
    return cls(response.status_code, code, detail, request_id, _retry_after(response))

"""The Python client for PixyProxy (what Ducky uses).

    from pixyproxy.client import PixyProxyClient

    with PixyProxyClient("http://127.0.0.1:8001") as client:
        image = client.generate("a lighthouse at dusk, watercolour")
        open(image.filename, "wb").write(client.content(image))

Importing it needs only httpx and pydantic: no server, SQL, S3 or OpenAI library is imported.
"""

from pixyproxy.client._base import API_KEY_ENV, DEFAULT_URL, GENERATE_TIMEOUT, URL_ENV, RetryPolicy
from pixyproxy.client.aio import AsyncPixyProxyClient
from pixyproxy.client.errors import (
    APIError,
    AuthenticationError,
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PixyProxyConnectionError,
    PixyProxyError,
    PixyProxyTimeout,
    RateLimited,
    ServerError,
    ServiceUnavailable,
)
from pixyproxy.client.models import ContentUrl, ImageDetail
from pixyproxy.client.sync import PixyProxyClient

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_URL",
    "GENERATE_TIMEOUT",
    "URL_ENV",
    "APIError",
    "AsyncPixyProxyClient",
    "AuthenticationError",
    "ContentPolicyViolation",
    "ContentUrl",
    "GeneratorError",
    "GeneratorRateLimited",
    "GeneratorTimeout",
    "IdempotencyConflict",
    "ImageDetail",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PixyProxyClient",
    "PixyProxyConnectionError",
    "PixyProxyError",
    "PixyProxyTimeout",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
]

"""The Python client for PixyProxy (what Ducky uses).

    from pixyproxy.client import PixyProxyClient

    with PixyProxyClient("http://127.0.0.1:8001") as client:
        image = client.generate("a lighthouse at dusk, watercolour")
        open(image.filename, "wb").write(client.content(image))

        job = client.submit("a fox in snow", n=4)   # a job: answered at once, made in the background
        job = client.wait(job)                      # or client.events(job), or a webhook_url

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
    JobFinished,
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
from pixyproxy.client.models import (
    ContentUrl,
    DoneEvent,
    ImageDetail,
    Job,
    JobError,
    JobEvent,
    PartialImageEvent,
    ProgressEvent,
    StatusEvent,
    UsageReport,
    UsageTotal,
)
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
    "DoneEvent",
    "GeneratorError",
    "GeneratorRateLimited",
    "GeneratorTimeout",
    "IdempotencyConflict",
    "ImageDetail",
    "InvalidRequest",
    "Job",
    "JobError",
    "JobEvent",
    "JobFinished",
    "NotFound",
    "PartialImageEvent",
    "PayloadTooLarge",
    "PermissionDenied",
    "PixyProxyClient",
    "PixyProxyConnectionError",
    "PixyProxyError",
    "PixyProxyTimeout",
    "ProgressEvent",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "StatusEvent",
    "UsageReport",
    "UsageTotal",
]

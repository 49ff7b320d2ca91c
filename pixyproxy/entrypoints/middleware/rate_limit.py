"""A per-client rate limit on the routes that cost money (every generating POST): 429 with Retry-After.

The client is the API key (`key:<name>`, left by the key check) or, with no keys configured, the
peer address. The counting is the limiter's (adapters/limits_counters.py, on the `limits` package): in
this process's memory, or in Redis when PIXYPROXY_REDIS_URL is set, where every replica counts against
one limit. Installed only when a rate is configured.
"""

import math
from typing import Any

from starlette.exceptions import HTTPException

from pixyproxy.domain.ports.counters import RateLimiter
from pixyproxy.entrypoints.middleware.api_keys import CLIENT_SCOPE_KEY

# The generating routes, with and without their trailing slash; edits of a stored image match by suffix.
LIMITED_PATHS = frozenset(
    {
        "/image",
        "/image/",
        "/image/jobs",
        "/image/jobs/",
        "/v1/images/generations",
        "/v1/images/generations/",
        "/v1/images/edits",
        "/v1/images/edits/",
    }
)
TOO_MANY = "too many image requests for this API key; retry after {seconds} s"


def limited(method: str, path: str) -> bool:
    if method != "POST":
        return False
    return path in LIMITED_PATHS or (path.startswith("/image/") and path.rstrip("/").endswith("/edits"))


class RateLimitCheck:
    """Run by the request guard (guard.py) after the key check, so it counts per key."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def admit(self, scope) -> None:
        if not limited(scope["method"], scope["path"]):
            return
        client = scope.get(CLIENT_SCOPE_KEY) or f"addr:{(scope.get('client') or ('-',))[0]}"
        wait = await self.limiter.take(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(429, TOO_MANY.format(seconds=seconds), {"Retry-After": str(seconds)})


def document_rate_limit(schema: dict[str, Any]) -> None:
    """Add the 429 answer to the limited operations of an OpenAPI schema."""
    too_many = {
        "description": "Too many image requests for this API key (`rate_limited`), or its daily budget "
        "is used up (`budget_exceeded`); retry after the Retry-After seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}},
    }
    for path, item in schema.get("paths", {}).items():
        operation = item.get("post")
        if operation is not None and limited("POST", path.replace("{guid}", "x")):
            operation.setdefault("responses", {}).setdefault("429", too_many)

"""A per-client token bucket on POST /image/ (the one route that costs money): 429 with Retry-After.

The client is the API key (a digest prefix left by the auth middleware) or, with no keys configured,
the peer address. Buckets live in this process: with N workers or replicas a key gets up to N times the
rate. Installed only when a rate is configured.
"""

import math
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from pixyproxy.entrypoints.middleware.api_keys import CLIENT_SCOPE_KEY

LIMITED = frozenset({("POST", "/image/"), ("POST", "/image")})
TOO_MANY = "too many image requests for this API key; retry after {seconds} s"


class TokenBucketLimiter:
    """`capacity` tokens per client, refilled at `per_minute / 60` a second; a request takes one."""

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, math.ceil(per_minute)))
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def take(self, client: str) -> float:
        """0 when the request may go ahead (a token is taken), else the seconds until a token is due."""
        now = self.clock()
        tokens, stamp = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[client] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._forget_full(now)
        return wait

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing."""
        for client, (tokens, stamp) in list(self._buckets.items()):
            if tokens + (now - stamp) * self.rate >= self.capacity:
                del self._buckets[client]


class RateLimitMiddleware:
    def __init__(self, app, limiter: TokenBucketLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in LIMITED:
            await self.app(scope, receive, send)
            return
        client = scope.get(CLIENT_SCOPE_KEY) or f"addr:{(scope.get('client') or ('-',))[0]}"
        wait = self.limiter.take(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(429, TOO_MANY.format(seconds=seconds), {"Retry-After": str(seconds)})
        await self.app(scope, receive, send)


def document_rate_limit(schema: dict[str, Any]) -> None:
    """Add the 429 answer to the limited operations of an OpenAPI schema."""
    too_many = {
        "description": "Too many image requests for this API key; retry after the Retry-After seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}},
    }
    for method, path in LIMITED:
        operation = schema.get("paths", {}).get(path, {}).get(method.lower())
        if operation is not None:
            operation.setdefault("responses", {}).setdefault("429", too_many)

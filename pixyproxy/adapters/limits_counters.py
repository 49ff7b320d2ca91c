"""Rate limits and budget counters on the `limits` package: in this process's memory, or in Redis
(PIXYPROXY_REDIS_URL) where every replica counts against the same numbers.

* LimitsRateLimiter: a moving window of `burst` requests per `burst / rate` seconds per client, which
  lets through at most `burst + rate x T` requests in any T seconds, as a token bucket would.
* LimitsUsageCounter: plain expiring counters (the budgets' images and tokens of a day).

A store that cannot be reached is a DependencyUnavailable (503), never a request let through unseen.
"""

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from pixyproxy.domain.errors import DependencyUnavailable

KEY_PREFIX = "pixyproxy"
UNREACHABLE = "the limits store (Redis) cannot be reached"


def limits_storage(redis_url: str | None, timeout_seconds: float = 2.0) -> Storage:
    """Memory (per process) without a URL; Redis through redis-py's asyncio client with one."""
    if not redis_url:
        return MemoryStorage(wrap_exceptions=True)
    return RedisStorage(
        f"async+{redis_url}",
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=KEY_PREFIX,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )


class LimitsRateLimiter:
    def __init__(self, storage: Storage, per_minute: float, burst: int | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.burst = burst if burst is not None else max(1, math.ceil(per_minute))
        window = max(1, math.ceil(self.burst * 60 / per_minute))
        self.item = RateLimitItemPerSecond(self.burst, window, namespace="rate")
        self.strategy = MovingWindowRateLimiter(storage)

    async def take(self, client: str) -> float:
        try:
            if await self.strategy.hit(self.item, client):
                return 0.0
            stats = await self.strategy.get_window_stats(self.item, client)
        except StorageError as exc:
            raise DependencyUnavailable(UNREACHABLE) from exc
        return max(0.001, stats.reset_time - time.time())


class LimitsUsageCounter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def incr(self, key: str, amount: int, expiry_seconds: int) -> int:
        try:
            return int(await self.storage.incr(f"budget/{key}", expiry_seconds, amount=amount))
        except StorageError as exc:
            raise DependencyUnavailable(UNREACHABLE) from exc

    async def get(self, key: str) -> int:
        try:
            return int(await self.storage.get(f"budget/{key}"))
        except StorageError as exc:
            raise DependencyUnavailable(UNREACHABLE) from exc

"""Deployment cooldowns in Redis, shared by every replica: one key per resting deployment, expiring by
itself (SET PX), read with one PTTL round trip for a model's deployments."""

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisCooldowns:
    def __init__(self, url: str, timeout_seconds: float = 2.0, prefix: str = "pixyproxy:cooldown:") -> None:
        self.client = aioredis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.prefix = prefix

    async def cooling(self, keys: Sequence[str]) -> dict[str, float]:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(self.prefix + key)
                left = await pipe.execute()
        except RedisError as exc:  # routing goes on without cooldowns rather than failing requests
            log.warning("cooldowns cannot be read from Redis: %s", type(exc).__name__)
            return {}
        return {key: ms / 1000 for key, ms in zip(keys, left, strict=True) if ms and ms > 0}

    async def cool(self, key: str, seconds: float) -> None:
        milliseconds = max(1, int(seconds * 1000))
        try:
            # GT: a longer rest already set (by another replica) is not shortened.
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.prefix + key, "1", px=milliseconds, nx=True)
                pipe.pexpire(self.prefix + key, milliseconds, gt=True)
                await pipe.execute()
        except RedisError as exc:
            log.warning("a cooldown cannot be written to Redis: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.client.aclose()

"""Deployment cooldowns in Redis, shared by every replica: one key per resting deployment, expiring by
itself (SET PX), read with one PTTL round trip for a request's deployments.

Requests arriving while a read of the same deployments is on its way join it rather than each sending
their own (and each taking a connection of the pool): the answer they share is at most one round trip
old. The rests this process set itself are known at once, whichever read answers.
"""

import asyncio
import logging
import time
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
        self._reads: dict[tuple[str, ...], asyncio.Future[dict[str, float]]] = {}
        self._own: dict[str, float] = {}  # rests set here: deployment -> until (monotonic clock)

    async def cooling(self, keys: Sequence[str]) -> dict[str, float]:
        wanted = tuple(keys)
        read = self._reads.get(wanted)
        if read is None:
            read = self._reads[wanted] = asyncio.ensure_future(self._read(wanted))
            read.add_done_callback(lambda done: self._forget(wanted, done))
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        left = dict(await asyncio.shield(read))
        if self._own:
            now = time.monotonic()
            for key in wanted:
                if (until := self._own.get(key, 0.0)) > now:
                    left[key] = max(left.get(key, 0.0), until - now)
                elif key in self._own:
                    del self._own[key]
        return left

    def _forget(self, wanted: tuple[str, ...], done: "asyncio.Future[dict[str, float]]") -> None:
        if self._reads.get(wanted) is done:
            del self._reads[wanted]

    async def _read(self, keys: tuple[str, ...]) -> dict[str, float]:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(self.prefix + key)
                left = await pipe.execute()
        except (RedisError, OSError) as exc:  # routing goes on without cooldowns rather than failing
            log.warning("cooldowns cannot be read from Redis: %s", type(exc).__name__)
            return {}
        return {key: ms / 1000 for key, ms in zip(keys, left, strict=True) if ms and ms > 0}

    async def cool(self, key: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._own[key] = max(until, self._own.get(key, 0.0))
        milliseconds = max(1, int(seconds * 1000))
        try:
            # GT: a longer rest already set (by another replica) is not shortened.
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.prefix + key, "1", px=milliseconds, nx=True)
                pipe.pexpire(self.prefix + key, milliseconds, gt=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("a cooldown cannot be written to Redis: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.client.aclose()

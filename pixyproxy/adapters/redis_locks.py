"""Idempotency-Key locks in Redis, shared by every replica: SET NX PX takes a lock with a random token
and an expiry (a replica that dies lets go by itself); a script deletes it only for the token's holder.
"""

import asyncio
import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pixyproxy.domain.errors import DependencyUnavailable

log = logging.getLogger(__name__)
UNREACHABLE = "the lock store (Redis) cannot be reached"
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# A waiter polls: the holder is another process, and a lock's expiry sends no message.
POLL_FIRST, POLL_MAX = 0.02, 0.25


class RedisIdempotencyLocks:
    name = "redis"

    def __init__(self, url: str, timeout_seconds: float = 2.0, prefix: str = "pixyproxy:lock:") -> None:
        self.client = aioredis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.prefix = prefix
        self._release = self.client.register_script(RELEASE)

    async def acquire(self, key: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        try:
            taken = await self.client.set(self.prefix + key, token, nx=True, px=int(ttl_seconds * 1000))
        except RedisError as exc:
            raise DependencyUnavailable(UNREACHABLE) from exc
        return token if taken else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[self.prefix + key], args=[token])
        except RedisError:  # it expires by itself; a waiter then takes over
            log.warning("an Idempotency-Key lock could not be released; it expires by itself")

    async def wait_released(self, key: str, timeout_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        pause = POLL_FIRST
        while loop.time() < deadline:
            try:
                if not await self.client.exists(self.prefix + key):
                    return
            except RedisError as exc:
                raise DependencyUnavailable(UNREACHABLE) from exc
            await asyncio.sleep(pause)
            pause = min(POLL_MAX, pause * 2)

    async def ping(self) -> None:
        try:
            await self.client.ping()  # type: ignore[misc]  # redis-py types it sync or async; it is async
        except RedisError as exc:
            raise DependencyUnavailable(UNREACHABLE) from exc

    async def close(self) -> None:
        await self.client.aclose()

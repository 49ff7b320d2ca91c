"""The cooldowns port, in memory and in Redis: a rest is read back with its time left, a longer rest is
not shortened, and a store that cannot be reached answers that nothing rests. In Redis, every replica
sees a rest, and requests arriving at once share one read (one connection) rather than each their own."""

import asyncio
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns
from pixyproxy.adapters.redis_cooldowns import RedisCooldowns
from tests.support.redis import flushed_redis_url


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    made = MemoryCooldowns() if request.param == "memory" else RedisCooldowns(flushed_redis_url())
    yield made
    await made.close()


async def test_a_rest_is_read_back_with_its_time_left(store):
    assert await store.cooling(["a#1", "a#2"]) == {}
    await store.cool("a#1", 30)
    cooling = await store.cooling(["a#1", "a#2"])
    assert list(cooling) == ["a#1"] and 29 < cooling["a#1"] <= 30


async def test_a_longer_rest_is_not_shortened(store):
    await store.cool("a#1", 60)
    await store.cool("a#1", 1)
    assert (await store.cooling(["a#1"]))["a#1"] > 59


async def test_every_replica_sees_a_rest_set_in_redis():
    url = flushed_redis_url()
    one, other = RedisCooldowns(url), RedisCooldowns(url)
    try:
        await one.cool("a#1", 30)
        assert list(await other.cooling(["a#1", "a#2"])) == ["a#1"]
    finally:
        await one.close()
        await other.close()


async def test_requests_at_once_share_one_read_and_one_connection():
    url = flushed_redis_url()
    name = f"cooldowns-{uuid4().hex}"  # how Redis lists this store's connections
    store = RedisCooldowns(f"{url}?client_name={name}")
    await store.cool("a#2", 30)  # set by this process: known to every read, shared or not
    other = RedisCooldowns(url)
    try:
        await other.cool("a#1", 30)  # set by another replica: known from Redis
        answers = await asyncio.gather(*(store.cooling(["a#1", "a#2", "a#3"]) for _ in range(200)))
        assert all(sorted(answer) == ["a#1", "a#2"] for answer in answers)
        admin = aioredis.from_url(url)
        try:
            listed = await admin.client_list()
        finally:
            await admin.aclose()
        assert sum(1 for client in listed if client.get("name") == name) == 1
    finally:
        await store.close()
        await other.close()


async def test_a_caller_that_goes_away_does_not_cancel_the_read_others_share():
    url = flushed_redis_url()
    store, other = RedisCooldowns(url), RedisCooldowns(url)
    try:
        await other.cool("a#1", 30)
        leaving = asyncio.create_task(store.cooling(["a#1"]))
        staying = asyncio.create_task(store.cooling(["a#1"]))
        await asyncio.sleep(0)  # both have asked
        leaving.cancel()
        assert list(await staying) == ["a#1"]
    finally:
        await store.close()
        await other.close()


async def test_a_redis_that_cannot_be_reached_means_nothing_rests_and_nothing_raises():
    store = RedisCooldowns("redis://127.0.0.1:1/0", timeout_seconds=1)
    try:
        await store.cool("a#1", 30)  # kept by this process all the same
        assert list(await store.cooling(["a#1", "a#2"])) == ["a#1"]
    finally:
        await store.close()

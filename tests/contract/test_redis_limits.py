"""The Redis side of limits, budgets and Idempotency-Key locks against a real Redis (database 7, flushed):
what two replicas share, and a Redis that cannot be reached answering 503 instead of letting requests
through uncounted."""

import asyncio

import httpx
import pytest

from pixyproxy.adapters.limits_counters import LimitsRateLimiter, LimitsUsageCounter, limits_storage
from pixyproxy.adapters.redis_locks import RedisIdempotencyLocks
from pixyproxy.domain.errors import DependencyUnavailable
from tests.e2e.server import free_port, run_server


async def test_two_replicas_count_one_rate_limit_and_one_counter(redis_url):
    # Each replica builds its own storage and limiter from the same URL.
    first = LimitsRateLimiter(limits_storage(redis_url), per_minute=60, burst=4)
    second = LimitsRateLimiter(limits_storage(redis_url), per_minute=60, burst=4)
    taken = [await (first if i % 2 else second).take("key:ann") for i in range(8)]
    assert taken[:4] == [0.0] * 4 and all(w > 0 for w in taken[4:])
    assert await first.take("key:bob") == 0.0

    counter_a, counter_b = (
        LimitsUsageCounter(limits_storage(redis_url)),
        LimitsUsageCounter(limits_storage(redis_url)),
    )
    assert await counter_a.incr("images/ann/2026-11-24", 1, 60) == 1
    assert await counter_b.incr("images/ann/2026-11-24", 2, 60) == 3
    assert await counter_a.incr("images/ann/2026-11-24", -1, 60) == 2
    assert await counter_b.get("images/ann/2026-11-24") == 2
    assert await counter_b.get("never-counted") == 0


async def test_a_lock_is_held_once_released_only_by_its_holder_and_expires(redis_url):
    first, second = RedisIdempotencyLocks(redis_url), RedisIdempotencyLocks(redis_url)
    try:
        token = await first.acquire("idem:1", 30)
        assert token is not None
        assert await second.acquire("idem:1", 30) is None
        await second.release("idem:1", "not-the-token")  # a stranger's release changes nothing
        assert await second.acquire("idem:1", 30) is None

        waiting = asyncio.create_task(second.wait_released("idem:1", 10))
        await first.release("idem:1", token)
        await asyncio.wait_for(waiting, 5)
        assert await second.acquire("idem:1", 30) is not None

        short = await first.acquire("idem:2", 0.05)  # a holder that died lets go by itself
        assert short is not None
        await first.wait_released("idem:2", 5)
        assert await second.acquire("idem:2", 30) is not None
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_redis_is_dependency_unavailable():
    url = f"redis://127.0.0.1:{free_port()}/7"
    with pytest.raises(DependencyUnavailable, match="Redis"):
        await LimitsRateLimiter(limits_storage(url, 0.5), per_minute=60).take("key:ann")
    with pytest.raises(DependencyUnavailable, match="Redis"):
        await LimitsUsageCounter(limits_storage(url, 0.5)).incr("images/ann/day", 1, 60)
    locks = RedisIdempotencyLocks(url, 0.5)
    try:
        with pytest.raises(DependencyUnavailable, match="Redis"):
            await locks.acquire("idem:1", 30)
        with pytest.raises(DependencyUnavailable, match="Redis"):
            await locks.ping()
    finally:
        await locks.close()


def test_readiness_reports_an_unreachable_redis_and_generations_answer_503(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/7"
    env = {
        "PIXYPROXY_REDIS_URL": url,
        "PIXYPROXY_RATE_LIMIT_PER_MINUTE": "60",
        "PIXYPROXY_REDIS_TIMEOUT_SECONDS": "0.5",
    }
    with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "Redis" in ready.json()["checks"]["redis"], ready.text
        refused = http.post("/image/", json={"prompt": "a fox"})
        assert refused.status_code == 503 and refused.json()["code"] == "dependency_unavailable"
        assert http.get("/image/").status_code == 200  # reads do not touch Redis
        assert "Traceback" not in server.log_text()

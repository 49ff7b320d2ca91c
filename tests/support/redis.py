"""The Redis the tests use: 127.0.0.1:6379 (or PIXYPROXY_TEST_REDIS_URL), database 7 only, flushed by
the tests that use it. Missing: skipped, or failed with CI=true (services.unavailable)."""

import os

import pytest

from tests.support.services import unavailable

TEST_REDIS_URL = os.environ.get("PIXYPROXY_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def flushed_redis_url() -> str:
    """The tests' database, emptied; skips (fails in CI) when no Redis answers."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError:
        unavailable(f"Redis at {TEST_REDIS_URL}")
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture
def redis_url() -> str:
    return flushed_redis_url()

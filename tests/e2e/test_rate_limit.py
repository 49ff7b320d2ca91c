"""The per-key rate limit on the generating routes: over real HTTP, in-process, and the limiter itself
(a moving window on the `limits` package; across replicas see test_scale_out_limits_e2e.py)."""

import httpx
import pytest
from limits.aio.storage import MemoryStorage
from starlette.testclient import TestClient

from pixyproxy.adapters.limits_counters import LimitsRateLimiter
from pixyproxy.entrypoints.middleware.guard import RequestGuard
from tests.e2e.server import run_server
from tests.support.embedded import in_process_app

KEY_A, KEY_B = "rate-key-a-4c1d", "rate-key-b-77e0"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "PIXYPROXY_API_KEYS": f"{KEY_A},{KEY_B}",
        "PIXYPROXY_RATE_LIMIT_PER_MINUTE": "1",  # one token a minute: no refill within a test
        "PIXYPROXY_RATE_LIMIT_BURST": "2",
    }
    with run_server(tmp_path_factory.mktemp("rate"), env) as running:
        yield running


def test_a_key_over_its_burst_gets_429_with_retry_after_and_nothing_is_stored(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for n in range(2):
            assert http.post(
                "/image/", json={"prompt": f"within burst {n}"}, headers=bearer(KEY_A)
            ).is_success
        refused = http.post("/image", json={"prompt": "over the limit"}, headers=bearer(KEY_A))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/json"
        body = refused.json()
        assert set(body) == {"detail", "code", "request_id"}
        assert body["code"] == "rate_limited" and body["request_id"] == refused.headers["x-request-id"]
        assert 1 <= int(refused.headers["retry-after"]) <= 120  # the window: 2 requests per 120 s
        assert "retry after" in body["detail"]

        listed = http.get("/image/", headers=bearer(KEY_A))
        assert listed.status_code == 200  # reads are not limited
        assert "over the limit" not in {item["prompt"] for item in listed.json()}
        assert len(listed.json()) == 2

        # Another key has its own limit.
        other = http.post("/image/", json={"prompt": "key b"}, headers=bearer(KEY_B))
        assert other.status_code == 200, other.text

        # A request refused for its key is not counted against anyone: still 401, not 429.
        assert http.post("/image/", json={"prompt": "x"}, headers=bearer("nope")).status_code == 401

        spec = http.get("/openapi.json").json()
        too_many = spec["paths"]["/image/"]["post"]["responses"]["429"]
        assert "Retry-After" in too_many["headers"]
        assert "429" not in spec["paths"]["/image/"]["get"]["responses"]


def test_without_keys_the_limit_is_per_client_address(tmp_path):
    app = in_process_app(tmp_path, rate_limit_per_minute=1, rate_limit_burst=1)
    with TestClient(app) as client:
        assert client.post("/image/", json={"prompt": "first"}).status_code == 200
        refused = client.post("/image/", json={"prompt": "second"})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert client.get("/image/").status_code == 200


def test_nothing_is_installed_by_default(tmp_path):
    app = in_process_app(tmp_path)
    (guard,) = [m for m in app.user_middleware if m.cls is RequestGuard]
    assert guard.kwargs["checks"] == []  # neither the key check nor the rate limit
    spec = app.openapi()
    assert "429" not in spec["paths"]["/image/"]["post"]["responses"]
    assert "401" not in spec["paths"]["/image/"]["post"]["responses"]


async def test_the_limiter_allows_the_burst_then_says_how_long_to_wait():
    limiter = LimitsRateLimiter(MemoryStorage(), per_minute=30, burst=3)  # 3 per 6 s window
    assert [await limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.take("a")
    assert 0 < wait <= 6
    assert await limiter.take("b") == 0.0  # clients do not share


async def test_the_default_burst_is_one_minute_of_requests():
    limiter = LimitsRateLimiter(MemoryStorage(), per_minute=5)
    assert [await limiter.take("a") for _ in range(6)].count(0.0) == 5
    with pytest.raises(ValueError):
        LimitsRateLimiter(MemoryStorage(), per_minute=0)

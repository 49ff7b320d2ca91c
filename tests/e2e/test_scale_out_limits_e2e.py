"""Limits that hold across replicas: two replicas behind nginx (deploy/nginx.conf.template) sharing one Redis
(database 7, flushed here) count one rate limit and one budget between them, and one Idempotency-Key sent
to both while the first is at the provider makes one provider call.

Needs nginx (skipped without it) and Redis (skipped, or failed with CI=true); the Idempotency-Key test
also needs MySQL, the replicas' shared metadata store."""

import hashlib
import math
import shutil
import threading
import time

import httpx
import pytest

from tests.e2e.server import run_server
from tests.e2e.test_scale_out_e2e import run_nginx, served
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis import flushed_redis_url

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
KEY = "ann-secret-key-1"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def replica_env(tmp_path, **extra: str) -> dict[str, str]:
    keys = tmp_path / "keys"
    keys.write_text(f"ann:user:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    return {"PIXYPROXY_API_KEYS_FILE": str(keys), "PIXYPROXY_REDIS_URL": flushed_redis_url(), **extra}


def two_replicas(tmp_path, env):
    """Two replicas' context managers, each in its own folder (and a folder for nginx beside them)."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "lb").mkdir()
    return run_server(tmp_path / "a", env), run_server(tmp_path / "b", env)


def test_two_replicas_sharing_redis_hold_one_rate_limit(tmp_path):
    per_minute, burst = 2, 3  # a moving window of 3 requests per 90 s
    env = replica_env(
        tmp_path, PIXYPROXY_RATE_LIMIT_PER_MINUTE=str(per_minute), PIXYPROXY_RATE_LIMIT_BURST=str(burst)
    )
    a_ctx, b_ctx = two_replicas(tmp_path, env)
    with a_ctx as a, b_ctx as b, run_nginx(tmp_path / "lb", [a.base_url[7:], b.base_url[7:]]) as lb:
        started = time.monotonic()
        answers = [
            httpx.post(f"{lb}/image/", json={"prompt": f"fox {i}"}, headers=HEADERS, timeout=30)
            for i in range(12)
        ]
        elapsed = time.monotonic() - started
        statuses = [r.status_code for r in answers]
        # Per process each replica would let `burst` through: 6. Shared, both together hold one limit.
        allowed = burst + math.floor(per_minute * elapsed / 60)
        assert burst <= statuses.count(200) <= allowed, statuses
        assert set(statuses) == {200, 429}
        # nginx spreads requests without an Idempotency-Key at random: both replicas took some.
        assert served(a.log_text(), "POST /image/") >= 1 and served(b.log_text(), "POST /image/") >= 1
        for refused in (r for r in answers if r.status_code == 429):
            assert refused.json()["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1


def test_two_replicas_sharing_redis_hold_one_budget(tmp_path):
    env = replica_env(tmp_path, PIXYPROXY_BUDGET_IMAGES_PER_DAY="4")
    a_ctx, b_ctx = two_replicas(tmp_path, env)
    with a_ctx as a, b_ctx as b, run_nginx(tmp_path / "lb", [a.base_url[7:], b.base_url[7:]]) as lb:
        answers = [
            httpx.post(f"{lb}/image/", json={"prompt": f"owl {i}"}, headers=HEADERS, timeout=30)
            for i in range(12)
        ]
        # Per process each replica would allow 4 (8 in all); shared, the two allow 4 between them.
        assert [r.status_code for r in answers] == [200] * 4 + [429] * 8
        assert {r.json()["code"] for r in answers[4:]} == {"budget_exceeded"}
        assert served(a.log_text(), "POST /image/") >= 1 and served(b.log_text(), "POST /image/") >= 1


@pytest.mark.mysql
def test_one_idempotency_key_on_two_replicas_makes_one_provider_call(
    tmp_path, mysql_url, fake_openai: FakeOpenAI
):
    fake_openai.latency = 2.0  # the first replica is at the provider while the second is asked
    env = replica_env(
        tmp_path,
        PIXYPROXY_DATABASE_URL=mysql_url,
        PIXYPROXY_STORAGE_URL=f"file://{tmp_path / 'shared-images'}",
        PIXYPROXY_GENERATOR="openai",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="sk-test-not-a-real-key-0000",
        PIXYPROXY_OPENAI_MAX_RETRIES="0",
    )
    a_ctx, b_ctx = two_replicas(tmp_path, env)
    with a_ctx as a, b_ctx as b:
        headers = {**HEADERS, "Idempotency-Key": "one-key-two-replicas"}
        body = {"prompt": "one key, one image"}
        answers: dict[str, httpx.Response] = {}

        def send(name: str, base_url: str) -> None:
            answers[name] = httpx.post(f"{base_url}/image/", json=body, headers=headers, timeout=30)

        first = threading.Thread(target=send, args=("a", a.base_url))
        first.start()
        deadline = time.monotonic() + 10
        while fake_openai.in_flight == 0:  # polled: the replica is another process
            assert time.monotonic() < deadline, "the first replica never reached the provider"
            time.sleep(0.01)
        send("b", b.base_url)  # sent while the first is at the provider; returns when it has finished
        first.join()
        assert answers["a"].status_code == answers["b"].status_code == 200, (
            answers["a"].text,
            answers["b"].text,
        )
        assert answers["a"].json()["guid"] == answers["b"].json()["guid"]
        assert len(fake_openai.generations) == 1 and fake_openai.peak_in_flight == 1

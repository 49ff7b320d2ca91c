"""/metrics scraped from the real service, one worker and several."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import free_port, run_server

MISSING = "00000000-0000-4000-8000-000000000000"


def scrape(base_url: str, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{base_url}/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_total(samples, method: str, route: str, status: int) -> float:
    labels = frozenset({"method": method, "route": route, "status": str(status)}.items())
    return samples.get(("pixyproxy_http_requests_total", labels), 0)


def test_requests_generations_and_bytes_are_counted(tmp_path):
    with run_server(tmp_path) as server, httpx.Client(base_url=server.base_url) as http:
        images = [http.post("/image/", json={"prompt": f"metrics fox {i}"}).json() for i in range(2)]
        guid = images[0]["guid"]
        for path in (f"/image/{guid}", f"/image/{guid}/", f"/image/{MISSING}"):
            http.get(path)
        assert http.get(f"/image/{guid}/content").status_code == 200
        assert http.post("/image/", json={"prompt": "too small", "size": "2x2"}).status_code == 422
        assert http.get("/no/such/route/12345").status_code == 404
        samples = scrape(server.base_url)

    assert requests_total(samples, "POST", "/image", 200) == 2
    assert requests_total(samples, "POST", "/image", 422) == 1
    assert requests_total(samples, "GET", "/image/{guid}", 200) == 2  # with and without the slash
    assert requests_total(samples, "GET", "/image/{guid}", 404) == 1
    assert requests_total(samples, "GET", "/image/{guid}/content", 200) == 1
    assert requests_total(samples, "GET", "<unmatched>", 404) == 1
    assert not any("12345" in str(labels) for _, labels in samples)  # raw paths never become labels

    latency = frozenset({"method": "GET", "route": "/image/{guid}"}.items())
    assert samples[("pixyproxy_http_request_duration_seconds_count", latency)] == 3
    infinite = frozenset({"method": "GET", "route": "/image/{guid}", "le": "+Inf"}.items())
    assert samples[("pixyproxy_http_request_duration_seconds_bucket", infinite)] == 3

    generated = frozenset({"model": "pixyproxy-offline", "outcome": "success"}.items())
    assert samples[("pixyproxy_generations_total", generated)] == 2  # the refused one never reached it
    assert samples[("pixyproxy_generator_duration_seconds_count", generated)] == 2
    assert samples[("pixyproxy_stored_images_total", frozenset())] == 2
    assert samples[("pixyproxy_stored_bytes_total", frozenset())] == sum(i["size_bytes"] for i in images)


def test_with_api_keys_a_scrape_needs_an_admin_key_and_refusals_are_counted_by_route(tmp_path):
    admin, user = "metrics-admin-key-51f0", "metrics-user-key-77a2"
    keys = f"ops:admin:{admin},ducky:user:{user}"
    with run_server(tmp_path, {"PIXYPROXY_API_KEYS": keys}) as server:
        assert httpx.get(f"{server.base_url}/image/{MISSING}").status_code == 401
        assert httpx.get(f"{server.base_url}/metrics").status_code == 401
        # A user key sees its own usage at /usage; /metrics shows every key's, so it is refused.
        refused = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {user}"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert "ducky" not in refused.text
        samples = scrape(server.base_url, Authorization=f"Bearer {admin}")
    assert requests_total(samples, "GET", "/image/{guid}", 401) == 1
    assert requests_total(samples, "GET", "/metrics", 401) == 1
    assert requests_total(samples, "GET", "/metrics", 403) == 1


@pytest.mark.parametrize("with_api_keys", [True, False], ids=["keys-on", "scrape-key-alone"])
def test_the_scrape_key_opens_metrics_and_nothing_else(tmp_path, with_api_keys):
    scrape_key, user = "prometheus-scrape-key-0c3d", "metrics-user-key-77a2"
    env = {"PIXYPROXY_METRICS_KEY": scrape_key}
    if with_api_keys:
        env["PIXYPROXY_API_KEYS"] = f"ducky:user:{user}"
    with run_server(tmp_path, env) as server:
        assert httpx.get(f"{server.base_url}/metrics").status_code == 401
        scrape(server.base_url, **{"X-API-Key": scrape_key})
        as_scrape = httpx.get(f"{server.base_url}/image/", headers={"X-API-Key": scrape_key})
        assert as_scrape.status_code == (401 if with_api_keys else 200)
        if with_api_keys:
            refused = httpx.get(f"{server.base_url}/metrics", headers={"X-API-Key": user})
            assert refused.status_code == 403


def test_several_workers_report_one_total(tmp_path):
    """`serve --workers 2`: every scrape, whichever worker answers it, counts every worker's requests.

    `serve` makes the shared metrics folder itself (in TMPDIR, here the test's folder) and removes it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env["TMPDIR"] = str(tmp_path)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # polled: the workers are other processes, with no event to wait on
        while len(_worker_pids(tmp_path)) < 2:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "two workers did not start"
            time.sleep(0.1)
        (metrics_dir,) = tmp_path.glob("pixyproxy-metrics-*")
        _wait_healthy(base_url, deadline)
        sent = 40
        for _ in range(sent):  # a new connection each time, so both workers get some
            assert httpx.get(f"{base_url}/healthz", headers={"Connection": "close"}).status_code == 200
        totals = set()
        for _ in range(6):
            samples = scrape(base_url)
            totals.add(requests_total(samples, "GET", "/healthz", 200))
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert totals == {sent + _healthz_before}, (tmp_path / "server.log").read_text()
    assert not metrics_dir.exists()  # removed when the server stopped


_healthz_before = 1  # _wait_healthy's successful probe


def _wait_healthy(base_url: str, deadline: float) -> None:
    while True:  # polled with a deadline: the server is another process, with no event to wait on
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.05)


def _worker_pids(tmp_path: Path) -> set[str]:
    """The workers writing into the shared metrics folder (one counter file per process)."""
    return {path.stem.rsplit("_", 1)[-1] for path in tmp_path.glob("pixyproxy-metrics-*/counter_*.db")}


@pytest.fixture(autouse=True)
def _no_inherited_multiproc_dir(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

"""A write waiting for SQLite's write lock, held by another process, freezes nothing else in the server:
its /healthz and a detail read keep answering at once while the POST waits for the lock."""

import sqlite3
import threading
import time

import httpx

from tests.e2e.server import run_server

HOLD_SECONDS = 2.0
P99_LIMIT_SECONDS = 0.050


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_healthz_and_reads_answer_while_a_post_waits_for_the_write_lock(tmp_path):
    env = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0", "PIXYPROXY_SQLITE_BUSY_TIMEOUT_SECONDS": "10"}
    with (
        run_server(tmp_path, env=env) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        guid = client.post("/image/", json={"prompt": "a lighthouse at dusk"}).json()["guid"]
        client.get(f"/image/{guid}").raise_for_status()  # a first read, so nothing is cold below

        holder = sqlite3.connect(tmp_path / "pixyproxy-data" / "pixyproxy.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock
        held_at = time.monotonic()
        posted: dict = {}
        post_sent = threading.Event()

        def post() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as poster:
                post_sent.set()
                posted["response"] = poster.post("/image/", json={"prompt": "waits for the lock"})
                posted["at"] = time.monotonic()

        thread = threading.Thread(target=post)
        thread.start()
        post_sent.wait()
        health, detail = [], []
        while time.monotonic() - held_at < HOLD_SECONDS:
            for path, times in (("/healthz", health), (f"/image/{guid}", detail)):
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                times.append(time.perf_counter() - started)
        assert "response" not in posted, "the POST did not wait for the write lock"
        released_at = time.monotonic()
        holder.execute("ROLLBACK")
        holder.close()
        thread.join()

    assert posted["response"].status_code == 200, posted["response"].text
    assert posted["at"] >= released_at  # it waited for the lock, and got it once let go
    assert p99(health) < P99_LIMIT_SECONDS, f"/healthz p99 {p99(health) * 1000:.0f} ms of {len(health)}"
    assert p99(detail) < P99_LIMIT_SECONDS, f"detail p99 {p99(detail) * 1000:.0f} ms of {len(detail)}"

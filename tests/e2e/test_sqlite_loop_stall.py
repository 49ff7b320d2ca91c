"""Waiting for SQLite's locks, held by another process, freezes nothing else in the server: while a
POST waits for the write lock its /healthz and a detail read answer at once; while a read waits for
an exclusive lock, /healthz answers at once."""

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


def test_a_read_that_must_wait_for_a_lock_waits_off_the_loop(tmp_path):
    """Another process in exclusive locking mode stops every reader. A detail read then waits for the
    lock (off the loop) and answers once it goes, while /healthz answers at once throughout."""
    env = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0", "PIXYPROXY_SQLITE_BUSY_TIMEOUT_SECONDS": "10"}
    with (
        run_server(tmp_path, env=env) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        guid = client.post("/image/", json={"prompt": "a lighthouse at dusk"}).json()["guid"]
        client.get(f"/image/{guid}").raise_for_status()  # a first read, so nothing is cold below

        holder = sqlite3.connect(tmp_path / "pixyproxy-data" / "pixyproxy.db", isolation_level=None)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("COMMIT")  # the exclusive lock stays until the connection closes
        held_at = time.monotonic()
        read: dict = {}
        read_sent = threading.Event()

        def detail() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as reader:
                read_sent.set()
                read["response"] = reader.get(f"/image/{guid}")
                read["at"] = time.monotonic()

        thread = threading.Thread(target=detail)
        thread.start()
        read_sent.wait()
        health = []
        while time.monotonic() - held_at < HOLD_SECONDS:
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            health.append(time.perf_counter() - started)
        assert "response" not in read, "the read did not wait for the lock"
        released_at = time.monotonic()
        holder.close()
        thread.join()

    assert read["response"].status_code == 200, read["response"].text
    assert read["response"].json()["guid"] == guid
    assert read["at"] >= released_at
    assert p99(health) < P99_LIMIT_SECONDS, f"/healthz p99 {p99(health) * 1000:.0f} ms of {len(health)}"

"""Faults on the embedded default (SQLite + files + offline generator), with real parts.

- The generator returns garbage: 502 in the one error shape, nothing stored.
- The service is SIGKILLed in the middle of generations: after a restart every listed image is served
  (no row without bytes), and `pixyproxy gc` removes the bytes no row points at.
- SIGTERM: requests in flight finish, then the process exits.
"""

import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from PIL import Image
from starlette.testclient import TestClient

from pixyproxy.entrypoints.app import create_app
from tests.e2e.server import run_server
from tests.support.embedded import embedded_container
from tests.support.fakes import ScriptedGenerator, png_bytes

DB = "pixyproxy-data/pixyproxy.db"
IMAGES = "pixyproxy-data/images"


def blob_names(workdir: Path) -> set[str]:
    """Every file in the image folder, temporary ones included."""
    folder = workdir / IMAGES
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def stored_keys(workdir: Path) -> set[str]:
    """The finished blobs (`{uuid}.png`), not the temporary files of writes in progress."""
    return {name for name in blob_names(workdir) if not name.startswith(".")}


def row_filenames(workdir: Path) -> set[str]:
    with sqlite3.connect(workdir / DB) as db:
        return {row[0] for row in db.execute("SELECT filename FROM images")}


def post_in_background(base_url: str, prompts: list[str]) -> tuple[list[threading.Thread], dict]:
    """Send each prompt from its own thread; results[prompt] is the response or the exception."""
    results: dict[str, object] = {}

    def send(prompt: str) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=60) as http:
                results[prompt] = http.post("/image/", json={"prompt": prompt})
        except httpx.HTTPError as exc:
            results[prompt] = exc

    threads = [threading.Thread(target=send, args=(p,), daemon=True) for p in prompts]
    for thread in threads:
        thread.start()
    return threads, results


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    # Polls with a deadline: the conditions are about another process, with no event to wait on.
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_every_listed_image_is_served(base_url: str) -> list[dict]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        listed = http.get("/image/", params={"limit": 1000})
        assert listed.status_code == 200
        for detail in listed.json():
            content = http.get(f"/image/{detail['guid']}/content")
            assert content.status_code == 200, (detail["guid"], content.text)
            assert hashlib.sha256(content.content).hexdigest() == detail["sha256"]
            assert len(content.content) == detail["size_bytes"]
        return listed.json()


# -- garbage from the generator ------------------------------------------------------------------


def _bomb() -> bytes:
    """A valid PNG header that claims 100000 x 100000 pixels: Pillow refuses it as a decompression bomb."""
    data = bytearray(png_bytes(8, 8))
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data[8:33] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return bytes(data)


GARBAGE = {
    "random-bytes": os.urandom(4096),
    "empty": b"",
    "html-error-page": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "json-instead-of-image": b'{"error": {"message": "oops"}}',
    "truncated-png": png_bytes(64, 64)[:60],
    "png-signature-then-junk": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
    "png-with-bad-crc": png_bytes(16, 16)[:-5] + b"\x00\x00\x00\x00\x00",
    "decompression-bomb": _bomb(),
}


@pytest.mark.parametrize("data", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_from_the_generator_is_502_and_nothing_is_stored(tmp_path, data):
    container = embedded_container(tmp_path)
    generator = ScriptedGenerator(image=data)
    container.generator.override(providers.Object(generator))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        response = client.post(
            "/image/", json={"prompt": "draw something"}, headers={"Idempotency-Key": "g1"}
        )
        assert response.status_code == 502, response.text
        body = response.json()
        assert set(body) == {"detail", "code", "request_id"} and body["code"] == "generator_error"
        assert len(generator.calls) == 1
        assert client.get("/image/").json() == []
        # The key was not used up by the failure: a retry with good bytes succeeds.
        generator.image = png_bytes()
        retry = client.post("/image/", json={"prompt": "draw something"}, headers={"Idempotency-Key": "g1"})
        assert retry.status_code == 200
    assert [p.name for p in (tmp_path / "images").iterdir()] == [f"{retry.json()['guid']}.png"]


# -- SIGKILL in the middle of generations --------------------------------------------------------


def test_sigkill_mid_generation_loses_no_listed_image_and_gc_removes_the_leftovers(tmp_path):
    # No job worker: its polls would wait on the lock below too, and SQLite waits on the event loop.
    env = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.5", "PIXYPROXY_JOB_WORKER": "false"}
    with run_server(tmp_path, env) as server:
        threads, results = post_in_background(server.base_url, [f"kept {n}" for n in range(3)])
        for thread in threads:
            thread.join(30)
        assert all(getattr(r, "status_code", None) == 200 for r in results.values()), results
        kept = row_filenames(tmp_path)
        assert blob_names(tmp_path) == kept and len(kept) == 3

        # Hold SQLite's write lock from outside: a generation whose bytes are written then waits to
        # record its row, which is the moment a crash leaves bytes without a row.
        lock = sqlite3.connect(tmp_path / DB, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            threads, results = post_in_background(server.base_url, [f"lost {n}" for n in range(6)])
            wait_for(lambda: len(stored_keys(tmp_path) - kept) >= 1, what="a blob written before its row")
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        for thread in threads:
            thread.join(30)
        # Nobody was told of an image that was not recorded.
        assert not any(getattr(r, "status_code", None) == 200 for r in results.values()), results
        orphans = stored_keys(tmp_path) - row_filenames(tmp_path)
        assert orphans, "the crash left no orphan, so this test proves nothing about gc"
        # A crash in the middle of a file write leaves its temporary file; make sure there is one.
        (tmp_path / IMAGES / f".{uuid.uuid4()}.png.{server.process.pid}.tmp").write_bytes(b"\x89PNG half")

    with run_server(tmp_path, env) as server:
        listed = assert_every_listed_image_is_served(server.base_url)
        assert {d["filename"] for d in listed} == row_filenames(tmp_path) == kept
        assert row_filenames(tmp_path) <= stored_keys(tmp_path)  # no row without bytes

        gc = subprocess.run(
            [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc", "--grace-seconds", "0"],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert gc.returncode == 0, gc.stderr
        assert f"removed {len(orphans)} orphan blob(s)" in gc.stdout
        assert blob_names(tmp_path) == row_filenames(tmp_path) == kept
        assert_every_listed_image_is_served(server.base_url)


# -- SIGTERM: graceful shutdown ------------------------------------------------------------------


def test_sigterm_lets_requests_in_flight_finish_before_the_process_exits(tmp_path):
    env = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "2.5"}  # long enough to be surely in flight at SIGTERM
    prompts = [f"in flight {n}" for n in range(4)]
    with run_server(tmp_path, env) as server:
        started_before = server.log_text().count("REQUEST START")
        threads, results = post_in_background(server.base_url, prompts)
        wait_for(
            lambda: server.log_text().count("REQUEST START") >= started_before + len(prompts),
            what="the requests to reach the app",
        )
        assert not results, "a request finished before SIGTERM: the latency is too short to test this"
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        # uvicorn re-raises the SIGTERM it handled once it has shut down, so the exit status says so.
        assert server.process.wait(30) in (0, -signal.SIGTERM)
        for prompt in prompts:
            response = results[prompt]
            assert isinstance(response, httpx.Response), f"{prompt}: {response!r}"
            assert response.status_code == 200, response.text
        log = server.log_text()
        assert log.count("REQUEST END POST /image/ 200") == len(prompts)
        # In this order: the signal, every request answered, then the app's shutdown (dependencies closed).
        shutting_down = log.index("Shutting down")
        last_answer = log.rindex("REQUEST END POST /image/ 200")
        assert shutting_down < last_answer < log.index("Application shutdown complete")

    stored = {r.json()["filename"] for r in results.values()}
    assert stored == row_filenames(tmp_path) == blob_names(tmp_path)
    for name in stored:
        with Image.open(io.BytesIO((tmp_path / IMAGES / name).read_bytes())) as image:
            image.verify()

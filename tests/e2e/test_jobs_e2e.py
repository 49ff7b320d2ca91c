"""Generation jobs over HTTP against the real server in a subprocess.

- SIGKILL mid-generation, then a restart: the job is taken over (attempts 2) and succeeds with n images,
  or, with one attempt allowed, ends failed (job_abandoned); after `pixyproxy gc` no bytes lack a row.
- Two replicas on one MySQL database run 50 jobs, each exactly once (calls counted on the fake OpenAI).
- Cancel mid-run (the provider call hanging): 202, nothing stored, a second cancel is 409.
- The event stream shows queued, running, the partial images the fake streams, succeeded and done.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import RunningServer, run_server
from tests.e2e.test_openai_e2e import openai_env

DB = "pixyproxy-data/pixyproxy.db"
IMAGES = "pixyproxy-data/images"
FAST_JOBS = {"PIXYPROXY_JOB_POLL_SECONDS": "0.05"}
# A short lease, so a killed process's job is taken over soon; only where a process is killed (on a
# loaded machine a renewal can come late enough for a live worker to lose its job to another).
SHORT_LEASE = {"PIXYPROXY_JOB_LEASE_SECONDS": "1.5"}


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0):
    """Poll `check` until it returns something truthy: the job runs in another process, with no event
    this test could wait on."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def job(server: RunningServer, job_id: str) -> dict:
    response = httpx.get(f"{server.base_url}/image/jobs/{job_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def submit(server: RunningServer, body: dict, **headers: str) -> dict:
    response = httpx.post(f"{server.base_url}/image/jobs", json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert response.headers["location"] == f"/image/jobs/{answer['id']}"
    return answer


def ended(server: RunningServer, job_id: str) -> Callable[[], dict | None]:
    def check() -> dict | None:
        current = job(server, job_id)
        return current if current["status"] in ("succeeded", "failed", "canceled") else None

    return check


def files_and_rows(workdir: Path) -> tuple[set[str], set[str]]:
    folder = workdir / IMAGES
    files = {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.exists() else set()
    with sqlite3.connect(workdir / DB) as db:
        rows = {row[0] for row in db.execute("SELECT filename FROM images")}
    return files, rows


def gc(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc", "--grace-seconds", "0"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(("max_attempts", "outcome"), [(2, "succeeded"), (1, "failed")])
def test_a_job_killed_mid_generation_is_taken_over_or_failed_cleanly(tmp_path, max_attempts, outcome):
    env = {
        **FAST_JOBS,
        **SHORT_LEASE,
        "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "2",
        "PIXYPROXY_JOB_MAX_ATTEMPTS": str(max_attempts),
    }
    with run_server(tmp_path, env) as first:
        submitted = submit(first, {"prompt": "a lighthouse", "n": 3})
        wait_for("the job to start", lambda: job(first, submitted["id"])["status"] == "running")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    with run_server(tmp_path, env) as second:
        done = wait_for("the job to end", ended(second, submitted["id"]))
        assert done["status"] == outcome
        if outcome == "succeeded":
            assert done["attempts"] == 2 and done["error"] is None
            assert len(done["images"]) == 3 and len({i["guid"] for i in done["images"]}) == 3
            for image in done["images"]:
                content = httpx.get(f"{second.base_url}/image/{image['guid']}/content", timeout=10)
                assert content.status_code == 200 and content.headers["content-type"] == "image/png"
        else:
            assert done["attempts"] == 1 and done["images"] == []
            assert done["error"]["code"] == "job_abandoned"
        listed = httpx.get(f"{second.base_url}/image/", timeout=10).json()
        assert len(listed) == (3 if outcome == "succeeded" else 0)  # never more images than n
    gc(tmp_path)
    files, rows = files_and_rows(tmp_path)
    assert files == rows


def test_a_clean_shutdown_puts_a_running_job_back_and_the_next_process_runs_it(tmp_path):
    env = {**FAST_JOBS, "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "2", "PIXYPROXY_JOB_MAX_ATTEMPTS": "1"}
    with run_server(tmp_path, env) as first:
        submitted = submit(first, {"prompt": "a lighthouse"})
        wait_for("the job to start", lambda: job(first, submitted["id"])["status"] == "running")
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(20) in (0, -signal.SIGTERM)
    with sqlite3.connect(tmp_path / DB) as db:
        [(status, attempts)] = db.execute("SELECT status, attempts FROM jobs").fetchall()
    assert (status, attempts) == ("queued", 0)  # back in the queue, the interrupted start not counted
    with run_server(tmp_path, env) as second:
        done = wait_for("the job to end", ended(second, submitted["id"]))
    assert (done["status"], done["attempts"], len(done["images"])) == ("succeeded", 1, 1)


def test_cancel_mid_run_stops_the_call_and_stores_nothing(tmp_path, fake_openai):
    fake_openai.fail_next("hang")
    with run_server(tmp_path, {**openai_env(fake_openai), **FAST_JOBS}) as server:
        submitted = submit(server, {"prompt": "a lighthouse"})
        wait_for("the provider call", lambda: fake_openai.in_flight == 1)
        response = httpx.delete(f"{server.base_url}/image/jobs/{submitted['id']}", timeout=10)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "canceled"
        again = httpx.delete(f"{server.base_url}/image/jobs/{submitted['id']}", timeout=10)
        assert again.status_code == 409 and again.json()["code"] == "job_finished"
        fake_openai.reset()  # the hanging answer comes now; nothing may be stored from it
        assert job(server, submitted["id"])["status"] == "canceled"
        assert job(server, submitted["id"])["images"] == []
        assert httpx.get(f"{server.base_url}/image/", timeout=10).json() == []
    files, rows = files_and_rows(tmp_path)
    assert files == rows == set()


def read_events(
    server: RunningServer, job_id: str, events: list[tuple[str, dict]], first: threading.Event
) -> None:
    """Append each event of the stream to `events` until `done`; set `first` once one has arrived."""
    name = None
    with httpx.stream("GET", f"{server.base_url}/image/jobs/{job_id}/events", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name is not None:
                events.append((name, json.loads(line.split(":", 1)[1])))
                first.set()
                if name == "done":
                    break


def test_the_event_stream_shows_queued_running_partials_succeeded_and_done(tmp_path, fake_openai):
    env = {**openai_env(fake_openai), **FAST_JOBS, "PIXYPROXY_JOB_CONCURRENCY": "1"}
    with run_server(tmp_path, env) as server:
        fake_openai.fail_next("hang")  # the first job holds the only slot, so the second one waits
        blocker = submit(server, {"prompt": "first"})
        wait_for("the first call", lambda: fake_openai.in_flight == 1)
        streamed = submit(server, {"prompt": "a lighthouse", "partial_images": 2})
        first_events: list[tuple[str, dict]] = []
        arrived = threading.Event()
        reader = threading.Thread(target=read_events, args=(server, streamed["id"], first_events, arrived))
        reader.start()
        assert arrived.wait(10)  # the queued state is on the wire before the slot frees
        httpx.delete(f"{server.base_url}/image/jobs/{blocker['id']}", timeout=10)
        reader.join(30)
        names = [name for name, _ in first_events if name != "progress"]
        statuses = [data["status"] for name, data in first_events if name == "status"]
        assert statuses == ["queued", "running", "succeeded"]
        assert names == ["status", "status", "partial_image", "partial_image", "status", "done"]
        # OpenAI tells no progress: the job's is 1 once its one image is stored, told before its status.
        progress = [(name, data) for name, data in first_events if name in ("progress", "status")]
        assert progress[-2:] == [("progress", {"progress": 1.0}), ("status", first_events[-2][1])]
        partials = [data for name, data in first_events if name == "partial_image"]
        assert [(p["image"], p["index"]) for p in partials] == [(0, 0), (0, 1)]
        assert all(p["b64_json"] for p in partials)
        assert first_events[-1][1]["images"][0]["guid"]
        [call] = [r for r in fake_openai.generations if r.body["prompt"] == "a lighthouse"]
        assert call.body["stream"] is True and call.body["partial_images"] == 2


@pytest.mark.mysql
def test_two_replicas_on_one_mysql_run_each_of_50_jobs_once(tmp_path, mysql_server, fake_openai):
    with mysql_server.database() as name:
        fake_openai.latency = 0.2
        env = {
            **openai_env(fake_openai),
            **FAST_JOBS,
            "PIXYPROXY_DATABASE_URL": mysql_server.url(name),
            "PIXYPROXY_STORAGE_URL": f"file:{tmp_path / 'images'}",
            "PIXYPROXY_JOB_CONCURRENCY": "5",
        }
        with run_server(tmp_path, env) as one, run_server(tmp_path, env) as two:
            replicas = [one, two]
            made = [submit(replicas[i % 2], {"prompt": f"job {i}"})["id"] for i in range(50)]
            done = [wait_for(f"job {i}", ended(replicas[i % 2], job_id), 60) for i, job_id in enumerate(made)]
            stored = [server.log_text().count("stored image ") for server in replicas]
        assert [d["status"] for d in done] == ["succeeded"] * 50
        assert [d["attempts"] for d in done] == [1] * 50
        prompts = sorted(r.body["prompt"] for r in fake_openai.generations)
        assert prompts == sorted(f"job {i}" for i in range(50))  # each job ran exactly once
        assert sum(stored) == 50 and min(stored) > 0, stored  # both replicas ran jobs
        [[count]] = mysql_server.query(name, "SELECT COUNT(*) FROM images")
        assert count == 50

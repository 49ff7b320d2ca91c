"""A job's progress end to end: a ComfyUI job through the fake ComfyUI (its sampler steps arrive over a
real WebSocket) shows values between 0 and 1 in the job's `progress` events, rising, and ends with
progress 1 in its events, its GET and the list; the Python client hands them over as ProgressEvents.
An AUTOMATIC1111 job does the same from the web UI's progress reads. The fakes hold each prompt until the
stream is open, so no step happens before anyone watches."""

import json
import shutil
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from pixyproxy.client import DoneEvent, PixyProxyClient, ProgressEvent, StatusEvent
from tests.e2e.server import run_server
from tests.support.fake_a1111 import FakeA1111
from tests.support.fake_comfyui import FakeComfyUI

STEPS = 4
FORGE_AUTH = "forge:s3cret"


@pytest.fixture(scope="module")
def comfy():
    with FakeComfyUI(steps=STEPS) as fake:
        yield fake


@pytest.fixture(scope="module")
def forge():
    with FakeA1111(auth=FORGE_AUTH, steps=STEPS) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, comfy, forge):
    workdir = tmp_path_factory.mktemp("job-progress")
    shutil.copytree(Path(__file__).parents[1] / "support" / "workflows", workdir / "workflows")
    models = workdir / "models.yaml"
    models.write_text(
        textwrap.dedent(
            f"""\
            default: offline
            models:
              - name: offline
                provider: offline
              - name: my-sdxl
                provider: comfyui
                base_url: {comfy.base_url}
                workflow: workflows/sdxl_api.json
                inputs: {{prompt: "6.text", width: "5.width", height: "5.height", seed: "3.seed"}}
              - name: forge
                provider: a1111
                base_url: {forge.base_url}
                auth_env: TEST_FORGE_AUTH
            """
        )
    )
    env = {
        "PIXYPROXY_MODELS_FILE": str(models),
        "PIXYPROXY_JOB_POLL_SECONDS": "0.05",
        "TEST_FORGE_AUTH": FORGE_AUTH,
    }
    with run_server(workdir, env, timeout=60) as running:
        yield running


@pytest.fixture
def gate(comfy):
    comfy.reset()
    comfy.gate = threading.Event()
    yield comfy.gate
    comfy.gate.set()
    comfy.gate = None


@pytest.fixture
def forge_gate(forge):
    forge.reset()
    forge.gate = threading.Event()
    yield forge.gate
    forge.gate.set()
    forge.gate = None


def events_of(http: httpx.Client, job_id: str, gate: threading.Event) -> list[tuple[str, dict]]:
    events = []
    with http.stream("GET", f"/image/jobs/{job_id}/events") as stream:
        gate.set()  # the stream is open: the prompt may run now
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name == "done":
                    break
    return events


def test_an_a1111_job_shows_the_web_uis_progress_and_ends_at_one(server, forge_gate, forge):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        job = http.post("/image/jobs", json={"prompt": "a fox", "model": "forge"}).json()
        events = events_of(http, job["id"], forge_gate)
        progress = [data["progress"] for name, data in events if name == "progress"]
        assert any(0 < p < 1 for p in progress), events  # read from the web UI while it sampled
        assert progress == sorted(set(progress)) and progress[-1] == 1.0
        assert events[-1][0] == "done" and events[-1][1]["progress"] == 1.0
        assert events[-1][1]["status"] == "succeeded"
        assert http.get(f"/image/jobs/{job['id']}").json()["progress"] == 1.0
    assert forge.progress_reads and all(r["current_image"] is None for r in forge.progress_reads)


def test_a_comfyui_job_shows_its_steps_as_progress_and_ends_at_one(server, gate):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        job = http.post("/image/jobs", json={"prompt": "a fox", "model": "my-sdxl"}).json()
        events = []
        with http.stream("GET", f"/image/jobs/{job['id']}/events") as stream:
            gate.set()  # the stream is open: the prompt may run now
            name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    events.append((name, json.loads(line.split(":", 1)[1])))
                    if name == "done":
                        break
        progress = [data["progress"] for name, data in events if name == "progress"]
        assert progress and 0 < progress[0] < 1, events  # a sampler step, before the image was stored
        assert progress == sorted(set(progress)) and progress[-1] == 1.0
        assert events[0][1]["progress"] is None  # queued, nothing told yet
        assert events[-1][0] == "done" and events[-1][1]["progress"] == 1.0
        assert http.get(f"/image/jobs/{job['id']}").json()["progress"] == 1.0
        listed = {j["id"]: j for j in http.get("/image/jobs").json()}
        assert listed[job["id"]]["progress"] == 1.0


def test_the_client_hands_over_progress_events_and_the_jobs_progress(server, gate):
    with PixyProxyClient(server.base_url) as client:
        job = client.submit("a heron", model="my-sdxl")
        assert job.progress is None
        seen: list[float] = []
        for event in client.events(job):
            if isinstance(event, StatusEvent):
                gate.set()  # watching: let it run
            elif isinstance(event, ProgressEvent):
                seen.append(event.progress)
            elif isinstance(event, DoneEvent):
                final = event.job
        assert seen and 0 < seen[0] < 1 and seen[-1] == 1.0
        assert final.succeeded and final.progress == 1.0 and client.job(job).progress == 1.0

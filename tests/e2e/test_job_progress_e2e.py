"""A job's progress end to end: a ComfyUI job through the fake ComfyUI (its sampler steps arrive over a
real WebSocket) shows values between 0 and 1 in the job's `progress` events, rising, and ends with
progress 1 in its events, its GET and the list; the Python client hands them over as ProgressEvents.
The fake holds each prompt until the stream is open, so no step happens before anyone watches."""

import json
import shutil
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from pixyproxy.client import DoneEvent, PixyProxyClient, ProgressEvent, StatusEvent
from tests.e2e.server import run_server
from tests.support.fake_comfyui import FakeComfyUI

STEPS = 4


@pytest.fixture(scope="module")
def comfy():
    with FakeComfyUI(steps=STEPS) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, comfy):
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
            """
        )
    )
    env = {"PIXYPROXY_MODELS_FILE": str(models), "PIXYPROXY_JOB_POLL_SECONDS": "0.05"}
    with run_server(workdir, env, timeout=60) as running:
        yield running


@pytest.fixture
def gate(comfy):
    comfy.reset()
    comfy.gate = threading.Event()
    yield comfy.gate
    comfy.gate.set()
    comfy.gate = None


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

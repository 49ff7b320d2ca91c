"""FLUX (bfl) and AUTOMATIC1111 / Forge (a1111) models of a catalogue over real HTTP against their fakes:
images stored with their provider's details, refusals as 422s, out of credits a 502 provider_billing,
edits, jobs with n > 1, /v1, /readyz, and a fallback from a local server that is down to another model."""

import base64
import io
import json
import shutil
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.server import free_port, run_server
from tests.support import fake_bfl
from tests.support.fake_a1111 import FakeA1111
from tests.support.fake_bfl import FakeBfl
from tests.support.fake_comfyui import FakeComfyUI

FORGE_AUTH = "forge:s3cret"


@pytest.fixture(scope="module")
def fakes():
    with FakeBfl(pending_polls=1) as flux, FakeA1111(auth=FORGE_AUTH) as forge, FakeComfyUI() as comfy:
        yield flux, forge, comfy


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes):
    flux, forge, comfy = fakes
    workdir = tmp_path_factory.mktemp("gpu-providers")
    shutil.copytree(Path(__file__).parents[1] / "support" / "workflows", workdir / "workflows")
    models = workdir / "models.yaml"
    models.write_text(
        textwrap.dedent(
            f"""\
            default: offline
            models:
              - name: offline
                provider: offline
              - name: flux
                provider: bfl
                model: flux-2-pro
                base_url: {flux.base_url}
                api_key_env: TEST_BFL_KEY
                price: {{per_megapixel: 0.03}}
              - name: forge
                provider: a1111
                base_url: {forge.base_url}
                model: sd_xl_base_1.0
                auth_env: TEST_FORGE_AUTH
                max_concurrency: 1
              - name: gpu-box
                provider: a1111
                base_url: http://127.0.0.1:{free_port()}
                timeout_seconds: 5
                fallbacks: [flux]
              - name: my-sdxl
                provider: comfyui
                base_url: {comfy.base_url}
                workflow: workflows/sdxl_api.json
                inputs:
                  prompt: "6.text"
                  negative_prompt: "7.text"
                  width: "5.width"
                  height: "5.height"
                  seed: "3.seed"
              - name: my-sdxl-edit
                provider: comfyui
                base_url: {comfy.base_url}
                workflow: workflows/img2img_api.json
                inputs: {{prompt: "6.text", image: "10.image"}}
            """
        )
    )
    env = {
        "PIXYPROXY_MODELS_FILE": str(models),
        "TEST_BFL_KEY": fake_bfl.KEY,
        "TEST_FORGE_AUTH": FORGE_AUTH,
    }
    with run_server(workdir, env, timeout=60) as running:
        yield running


@pytest.fixture
def client(server, fakes):
    flux, forge, comfy = fakes
    flux.reset()
    flux.pending_polls = 1
    forge.reset()
    comfy.reset()
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        yield http


def test_a_flux_image_is_polled_fetched_at_once_and_stored(client, fakes):
    flux = fakes[0]
    response = client.post("/image/", json={"prompt": "a fox", "model": "flux", "size": "1024x768"})
    assert response.status_code == 200, response.text
    detail = response.json()
    assert (detail["model"], detail["provider"], detail["width"], detail["height"]) == (
        "flux",
        "bfl",
        1024,
        768,
    )
    assert [status for _, status in flux.downloads] == [200]
    assert detail["estimated_cost_usd"] == pytest.approx(0.03 * 1024 * 768 / 1e6, abs=1e-6)  # per_megapixel
    stored = client.get(f"/image/{detail['guid']}/content")
    assert stored.status_code == 200 and Image.open(io.BytesIO(stored.content)).size == (1024, 768)


def test_flux_refusals_are_named(client, fakes):
    flux = fakes[0]
    refused = client.post("/image/", json={"prompt": "x", "model": "flux", "size": "1000x1000"})
    assert refused.status_code == 422 and "multiple of 16" in refused.json()["detail"]
    moderated = client.post("/image/", json={"prompt": "something forbidden", "model": "flux"})
    assert moderated.status_code == 422 and moderated.json()["code"] == "content_policy_violation"
    flux.credits = 0
    billing = client.post("/image/", json={"prompt": "a fox", "model": "flux"})
    assert billing.status_code == 502 and billing.json()["code"] == "provider_billing"


def test_a_forge_image_keeps_its_seed_and_sampler(client, fakes):
    forge = fakes[1]
    response = client.post("/image/", json={"prompt": "a barn", "model": "forge", "size": "832x1216"})
    assert response.status_code == 200, response.text
    detail = response.json()
    assert (detail["provider"], detail["width"], detail["height"]) == ("a1111", 832, 1216)
    details = detail["usage"]["provider_details"]
    assert details["sampler_name"] == "DPM++ 2M" and details["sd_model_name"] == "sd_xl_base_1.0"
    assert forge.checkpoint_switches == 1


def test_edits_through_flux_and_forge(client, fakes):
    flux, forge, _ = fakes
    source = client.post("/image/", json={"prompt": "a square", "size": "512x512"}).json()["guid"]
    for model in ("flux", "forge"):
        edited = client.post(f"/image/{source}/edits", json={"prompt": "make it red", "model": model})
        assert edited.status_code == 200, edited.text
        assert edited.json()["provider"] == ("bfl" if model == "flux" else "a1111")
    assert "input_image" in flux.submitted[-1]
    assert forge.calls[-1][1] == "img2img" and forge.calls[-1][2]["init_images"]


def test_a_local_server_that_is_down_falls_back_to_flux(client, server):
    detail = client.post("/image/", json={"prompt": "a kite", "model": "gpu-box"}).json()
    assert (detail["model"], detail["provider"], detail["attempts"]) == ("flux", "bfl", 2)
    metrics = client.get("/metrics").text
    attempts = "pixyproxy_provider_attempts_total"
    assert f'{attempts}{{deployment="gpu-box#1",outcome="generator_error",provider="a1111"}}' in metrics
    assert f'{attempts}{{deployment="flux#1",outcome="success",provider="bfl"}}' in metrics
    ends = [line for line in server.log_text().splitlines() if "REQUEST END POST /image/ 200" in line]
    assert ends and ends[-1].endswith("provider=bfl outcome=success")
    # Resting: the next request goes straight to the fallback.
    again = client.post("/image/", json={"prompt": "a kite", "model": "gpu-box"}).json()
    assert (again["model"], again["attempts"]) == ("flux", 1)


def test_a_job_of_two_forge_images_and_v1(client, fakes):
    forge = fakes[1]
    job = client.post("/image/jobs", json={"prompt": "two barns", "model": "forge", "n": 2}).json()
    deadline = time.monotonic() + 30
    while (state := client.get(f"/image/jobs/{job['id']}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)  # the job runs in the server's process: polled with a deadline
    assert state["status"] == "succeeded" and len(state["images"]) == 2, state
    assert [call[1] for call in forge.calls].count("txt2img") == 2
    v1 = client.post("/v1/images/generations", json={"prompt": "a fox", "model": "flux", "size": "512x512"})
    assert v1.status_code == 200, v1.text
    assert Image.open(io.BytesIO(base64.b64decode(v1.json()["data"][0]["b64_json"]))).size == (512, 512)


def test_readyz_reports_each_provider(client):
    checks = client.get("/readyz").json()["checks"]
    assert checks["provider flux#1 (bfl)"] == "ok"
    assert checks["provider forge#1 (a1111)"] == "ok"
    assert checks["provider gpu-box#1 (a1111)"] != "ok"
    assert checks["provider my-sdxl#1 (comfyui)"] == "ok"


def test_a_comfyui_image_and_edit(client, fakes):
    comfy = fakes[2]
    made = client.post("/image/", json={"prompt": "a lighthouse", "model": "my-sdxl", "size": "768x512"})
    assert made.status_code == 200, made.text
    assert (made.json()["provider"], made.json()["width"], made.json()["height"]) == ("comfyui", 768, 512)
    assert comfy.prompts[-1]["prompt"]["6"]["inputs"]["text"] == "a lighthouse"
    edited = client.post(
        f"/image/{made.json()['guid']}/edits", json={"prompt": "at night", "model": "my-sdxl-edit"}
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["width"], edited.json()["height"]) == (768, 512)
    refused = client.post(f"/image/{made.json()['guid']}/edits", json={"prompt": "x", "model": "my-sdxl"})
    assert refused.status_code == 422 and "does not make edits" in refused.json()["detail"]


def test_a_comfyui_job_streams_its_previews(client, fakes):
    comfy = fakes[2]
    comfy.gate = threading.Event()
    try:
        job = client.post("/image/jobs", json={"prompt": "a fox", "model": "my-sdxl", "partial_images": 2})
        assert job.status_code in (200, 202), job.text
        events = []
        with client.stream("GET", f"/image/jobs/{job.json()['id']}/events") as stream:
            comfy.gate.set()  # the stream is open: the prompt may run now
            name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    events.append((name, json.loads(line.split(":", 1)[1])))
                    if name == "done":
                        break
    finally:
        comfy.gate = None
    partials = [data for name, data in events if name == "partial_image"]
    assert [p["index"] for p in partials] == [0, 1] and partials[0]["b64_json"]
    final = client.get(f"/image/jobs/{job.json()['id']}").json()
    assert final["status"] == "succeeded", final


def _finished(client, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while (state := client.get(f"/image/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)  # the job runs in the server's process: polled with a deadline
    return state


def test_a_negative_prompt_reaches_the_models_that_take_it_and_is_refused_by_the_others(client, fakes):
    forge, comfy = fakes[1], fakes[2]
    made = client.post("/image/", json={"prompt": "a barn", "model": "forge", "negative_prompt": "people"})
    assert made.status_code == 200, made.text
    assert made.json()["usage"]["provider_details"]["negative_prompt"] == "people"
    assert forge.calls[-1][2]["negative_prompt"] == "people"
    offline = client.post("/image/", json={"prompt": "a barn", "model": "offline", "negative_prompt": "fog"})
    assert offline.status_code == 200, offline.text
    assert offline.json()["usage"]["provider_details"] == {"negative_prompt": "fog"}
    job = client.post(
        "/image/jobs", json={"prompt": "a fox", "model": "my-sdxl", "n": 2, "negative_prompt": "rain"}
    )
    assert job.status_code in (200, 202), job.text
    assert _finished(client, job.json()["id"])["status"] == "succeeded"
    assert [p["prompt"]["7"]["inputs"]["text"] for p in comfy.prompts] == ["rain", "rain"]
    refused = client.post("/image/", json={"prompt": "x", "model": "flux", "negative_prompt": "fog"})
    assert refused.status_code == 422, refused.text
    assert "negative_prompt: model 'flux' does not take negative_prompt" in refused.json()["detail"]
    edit = client.post(
        f"/image/{made.json()['guid']}/edits",
        json={"prompt": "at night", "model": "my-sdxl-edit", "negative_prompt": "fog"},
    )
    assert edit.status_code == 422 and "my-sdxl-edit" in edit.json()["detail"], edit.text


def test_a_cancelled_comfyui_job_stops_its_prompt_at_comfyui(client, fakes):
    comfy = fakes[2]
    comfy.gate = threading.Event()  # the prompt runs and holds until interrupted
    try:
        job = client.post("/image/jobs", json={"prompt": "a fox", "model": "my-sdxl"})
        assert job.status_code in (200, 202), job.text
        comfy.wait_until(lambda: comfy.running is not None)
        prompt_id = comfy.running[1]
        cancelled = client.delete(f"/image/jobs/{job.json()['id']}")
        assert cancelled.status_code == 202, cancelled.text
        comfy.wait_until(lambda: comfy.running is None)
    finally:
        comfy.gate.set()
        comfy.gate = None
    assert comfy.interrupted == [prompt_id] and not comfy.history[prompt_id]["outputs"]
    assert _finished(client, job.json()["id"])["status"] == "canceled"

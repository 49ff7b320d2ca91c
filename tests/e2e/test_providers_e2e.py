"""Gemini and Azure models of a catalogue over real HTTP (each through its real SDK against its fake): the
image details name model, provider, deployment, attempts and cost; an Azure 500 falls back to Gemini; a
refusal is a 422 at once; /readyz reports each provider; /usage totals by key, model and provider."""

import textwrap

import httpx
import pytest

from tests.e2e.server import run_server
from tests.support import fake_azure, fake_gemini
from tests.support.fake_azure import FakeAzure
from tests.support.fake_gemini import FakeGemini


@pytest.fixture(scope="module")
def fakes():
    with FakeGemini() as gemini, FakeAzure() as azure:
        yield gemini, azure


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes):
    gemini, azure = fakes
    workdir = tmp_path_factory.mktemp("providers")
    models = workdir / "models.yaml"
    models.write_text(
        textwrap.dedent(
            f"""\
            default: offline
            models:
              - name: offline
                provider: offline
              - name: nano-banana
                provider: gemini
                model: gemini-nano-banana-2.1
                base_url: {gemini.base_url}
                api_key_env: TEST_GEMINI_KEY
                price: {{image_out_per_million: 30, text_in_per_million: 1}}
              - name: azure-image
                provider: azure
                model: my-gpt-image
                base_model: gpt-image-2.6-sunburst
                base_url: {azure.base_url}
                api_version: 2025-04-01-preview
                api_key_env: TEST_AZURE_KEY
                fallbacks: [nano-banana]
            """
        )
    )
    env = {
        "PIXYPROXY_MODELS_FILE": str(models),
        "TEST_GEMINI_KEY": fake_gemini.KEY,
        "TEST_AZURE_KEY": fake_azure.KEY,
    }
    with run_server(workdir, env, timeout=60) as running:
        yield running


@pytest.fixture
def client(server, fakes):
    for fake in fakes:
        fake.reset()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def test_a_gemini_image_is_stored_with_its_provider_usage_and_cost(client, fakes):
    response = client.post(
        "/image/",
        json={"prompt": "a banana", "model": "nano-banana", "size": "1376x768", "output_format": "webp"},
    )
    assert response.status_code == 200, response.text
    detail = response.json()
    assert (detail["model"], detail["provider"], detail["deployment"], detail["attempts"]) == (
        "nano-banana",
        "gemini",
        "nano-banana#1",
        1,
    )
    assert (detail["width"], detail["height"], detail["content_type"]) == (1376, 768, "image/webp")
    assert detail["revised_prompt"] == "Here is a banana, drawn."
    # 1302 image-and-text tokens out at the image-out price (text out unpriced), 2 text tokens in.
    assert detail["estimated_cost_usd"] == pytest.approx(1290 * 30 / 1e6 + 2 * 1 / 1e6)
    assert response.headers["x-pixyproxy-cost"] == f"{detail['estimated_cost_usd']:.6f}"


def test_a_size_gemini_cannot_draw_names_the_nearest(client, fakes):
    response = client.post("/image/", json={"prompt": "x", "model": "nano-banana", "size": "1600x900"})
    assert response.status_code == 422 and "nearest is 1376x768" in response.json()["detail"]
    assert not fakes[0].requests


def test_an_azure_500_falls_back_to_gemini_and_a_filter_refusal_does_not(client, fakes):
    gemini, azure = fakes
    refused = client.post("/image/", json={"prompt": "something filtered", "model": "azure-image"})
    assert refused.status_code == 422 and "violence (medium)" in refused.json()["detail"]
    assert len(azure.requests) == 1 and not gemini.requests
    azure.fail_next("server_error")
    detail = client.post("/image/", json={"prompt": "a kite", "model": "azure-image"}).json()
    assert (detail["model"], detail["provider"], detail["attempts"]) == ("nano-banana", "gemini", 2)
    assert len(azure.requests) == 2 and len(gemini.requests) == 1


def test_a_gemini_safety_refusal_is_a_422(client):
    refused = client.post("/image/", json={"prompt": "forbidden", "model": "nano-banana"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "content_policy_violation" and "IMAGE_SAFETY" in refused.json()["detail"]


def test_readyz_reports_each_provider(client):
    checks = client.get("/readyz").json()["checks"]
    assert checks["provider offline#1 (offline)"] == "ok"
    assert checks["provider nano-banana#1 (gemini)"] == "ok"
    assert checks["provider azure-image#1 (azure)"] == "ok"


def test_usage_totals_by_key_model_and_provider(client):
    client.post("/image/", json={"prompt": "one", "model": "nano-banana"})
    client.post("/image/", json={"prompt": "two"})
    report = client.get("/usage").json()
    by = {(row["model"], row["provider"]): row for row in report["models"]}
    assert by[("nano-banana", "gemini")]["images"] >= 1 and by[("offline", "offline")]["images"] >= 1
    assert {row["provider"] for row in report["providers"]} >= {"gemini", "offline"}

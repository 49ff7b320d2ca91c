"""The model catalogue over real HTTP: a YAML file of models whose deployments are two fake OpenAI
servers (the real SDK against each), balanced by weight, resting after a 500 (counted on the fakes,
shared through Redis between two replicas), falling back in order, never on a refusal; aliases; unknown
fields and options a model does not take refused by name, on /image/ and /v1."""

import io
import json
import textwrap

import httpx
import pytest
from PIL import Image

from tests.e2e.server import run_server
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis import flushed_redis_url

KEY_ENV = "PIXYPROXY_TEST_FAKE_KEY"


def catalogue_yaml(a: FakeOpenAI, b: FakeOpenAI) -> str:
    def deployment(name: str, fake: FakeOpenAI, **extra: str) -> str:
        lines = [
            f"  - name: {name}",
            "    provider: openai",
            "    model: gpt-image-2.6-sunburst",
            f"    base_url: {fake.base_url}",
            f"    api_key_env: {KEY_ENV}",
        ]
        return "\n".join(lines + [f"    {k}: {v}" for k, v in extra.items()])

    return "\n".join(
        [
            "default: offline",
            "models:",
            "  - name: offline",
            "    provider: offline",
            deployment("primary", a, fallbacks="[backup]"),
            deployment("backup", b),
            deployment("balanced", a, weight="3"),
            deployment("balanced", b, weight="1"),
            deployment("refusing", a, fallbacks="[backup]"),
            textwrap.dedent(
                f"""\
                  - name: older
                    provider: openai
                    model: gpt-image-2
                    base_url: {a.base_url}
                    api_key_env: {KEY_ENV}
                aliases:
                  dall-e-3: primary
                """
            ),
        ]
    )


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


@pytest.fixture(scope="module")
def redis_url():
    return flushed_redis_url()


def server_env(workdir, fakes, redis_url) -> dict[str, str]:
    models = workdir / "models.yaml"
    models.write_text(catalogue_yaml(*fakes))
    return {
        "PIXYPROXY_MODELS_FILE": str(models),
        "PIXYPROXY_COOLDOWN_SECONDS": "600",
        "PIXYPROXY_REDIS_URL": redis_url,
        KEY_ENV: "sk-test-catalogue-0000",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes, redis_url):
    workdir = tmp_path_factory.mktemp("catalogue")
    with run_server(workdir, server_env(workdir, fakes, redis_url), timeout=60) as running:
        running.workdir = workdir
        yield running


@pytest.fixture
def client(server, fakes):
    for fake in fakes:
        fake.reset()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def generate(client, **body):
    return client.post("/image/", json={"prompt": "a harbour at night", **body})


def test_a_500_falls_back_then_the_deployment_rests_and_another_replica_knows(
    server, client, fakes, tmp_path, redis_url
):
    a, b = fakes
    a.fail_next("server_error", times=5)
    first = generate(client, model="primary")
    assert first.status_code == 200, first.text
    detail = first.json()
    assert (detail["model"], detail["provider"], detail["deployment"], detail["attempts"]) == (
        "backup",
        "openai",
        "backup#1",
        2,
    )
    assert (len(a.generations), len(b.generations)) == (1, 1)
    metrics = client.get("/metrics").text
    attempts = "pixyproxy_provider_attempts_total"
    assert f'{attempts}{{deployment="primary#1",outcome="generator_error",provider="openai"}} 1.0' in metrics
    assert f'{attempts}{{deployment="backup#1",outcome="success",provider="openai"}} 1.0' in metrics
    ends = [line for line in server.log_text().splitlines() if "REQUEST END POST /image/ 200" in line]
    assert ends and ends[-1].endswith("provider=openai outcome=success")
    # Resting: the next request goes straight to the fallback; the failed deployment is not asked.
    second = generate(client, model="primary").json()
    assert second["attempts"] == 1 and second["model"] == "backup"
    assert (len(a.generations), len(b.generations)) == (1, 2)
    # A second replica sharing Redis knows the deployment rests, without asking it once.
    with (
        run_server(tmp_path, server_env(tmp_path, fakes, redis_url), timeout=60) as other,
        httpx.Client(base_url=other.base_url, timeout=30) as other_client,
    ):
        third = generate(other_client, model="primary").json()
    assert third["model"] == "backup" and third["attempts"] == 1
    assert (len(a.generations), len(b.generations)) == (1, 3)


def test_a_refusal_never_falls_back(client, fakes):
    a, b = fakes
    a.fail_next("moderation_blocked")
    response = generate(client, model="refusing")
    assert response.status_code == 422 and response.json()["code"] == "content_policy_violation"
    assert (len(a.generations), len(b.generations)) == (1, 0)


def test_deployments_are_balanced_by_weight(client, fakes):
    a, b = fakes
    models = {generate(client, model="balanced").json()["deployment"] for _ in range(8)}
    assert models == {"balanced#1", "balanced#2"}
    assert (len(a.generations), len(b.generations)) == (6, 2)


def test_an_alias_means_its_model_and_the_provider_is_sent_its_own_id(client, fakes):
    response = generate(client, model="dall-e-3")
    assert response.status_code == 200, response.text
    assert response.json()["model"] in ("primary", "backup")
    for call in [*fakes[0].generations, *fakes[1].generations]:
        assert call.body["model"] == "gpt-image-2.6-sunburst"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"sise": "1024x1024"}, "sise"),
        ({"model": "older", "output_format": "gif"}, "output_format: model 'older' takes png, webp, jpeg"),
        ({"model": "older", "quality": "xhigh"}, "quality: model 'older' takes"),
        ({"model": "older", "complexity": "high"}, "complexity: model 'older' does not take complexity"),
        ({"model": "primary", "size": "3840x2176"}, "size: model 'primary' cannot draw 3840x2176"),
        ({"model": "nope"}, "model: no model 'nope' here"),
    ],
)
def test_unknown_fields_and_options_the_model_does_not_take_are_refused_by_name(client, fakes, body, named):
    response = generate(client, **body)
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"]
    assert not fakes[0].requests and not fakes[1].requests  # nothing was sent, nothing paid for
    v1 = client.post("/v1/images/generations", json={"prompt": "x", **body})
    if "sise" not in body:  # /v1 ignores what OpenAI's API does not define, as OpenAI's SDK tools expect
        assert v1.status_code == 400, v1.text
        error = v1.json()["error"]
        assert error["param"] == named.split(":")[0] and named in error["message"]


def test_the_latest_models_options_reach_the_provider(client, fakes):
    a, _ = fakes
    response = generate(
        client, model="balanced", output_format="gif", frame_count=3, frame_duration_ms=120, complexity="high"
    )
    assert response.status_code == 200, response.text
    [call] = [*a.generations, *fakes[1].generations]
    assert {k: call.body[k] for k in ("output_format", "frame_count", "frame_duration_ms", "complexity")} == {
        "output_format": "gif",
        "frame_count": 3,
        "frame_duration_ms": 120,
        "complexity": "high",
    }
    assert response.json()["content_type"] == "image/gif"


def test_models_and_v1_models_list_the_catalogue(client):
    listed = client.get("/models").json()
    names = [m["name"] for m in listed]
    assert names == ["offline", "primary", "backup", "balanced", "refusing", "older"]
    primary = next(m for m in listed if m["name"] == "primary")
    assert primary["aliases"] == ["dall-e-3"] and primary["fallbacks"] == ["backup"]
    assert primary["options"]["output_format"] == ["png", "webp", "jpeg", "gif", "svg"]
    assert primary["price"]["image_out_per_million"] == 30
    older = next(m for m in listed if m["name"] == "older")
    assert "complexity" not in older["options"]
    v1 = client.get("/v1/models").json()
    assert [card["id"] for card in v1["data"]] == names
    assert client.get("/v1/models/balanced").status_code == 200


def test_a_bad_models_file_stops_the_start_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - name: a\n    provider: openai\n    wieght: 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXYPROXY_")}
    env["PIXYPROXY_MODELS_FILE"] = str(models)
    ran = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "serve", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    [line] = ran.stderr.strip().splitlines()
    assert "models[0] (a): wieght: not a field of openai entries" in line


def _png_upload() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _estimated(client, answer) -> float:
    """What the stored images of a /v1 answer were estimated to cost, added up."""
    return sum(client.get(f"/image/{item['guid']}").json()["estimated_cost_usd"] for item in answer["data"])


def test_generating_answers_carry_their_cost_on_v1_too_n_images_added_up(client):
    single = generate(client, model="balanced")
    assert float(single.headers["x-pixyproxy-cost"]) == pytest.approx(single.json()["estimated_cost_usd"])
    assert single.json()["estimated_cost_usd"] > 0
    made = client.post(
        "/v1/images/generations", json={"prompt": "a harbour at night", "model": "balanced", "n": 2}
    )
    assert made.status_code == 200, made.text
    cost = float(made.headers["x-pixyproxy-cost"])
    assert cost == pytest.approx(_estimated(client, made.json()), abs=2e-6)
    assert cost == pytest.approx(2 * single.json()["estimated_cost_usd"])
    edited = client.post(
        "/v1/images/edits",
        files=[("image", ("a.png", _png_upload(), "image/png"))],
        data={"prompt": "add a moon", "model": "balanced", "n": "2"},
    )
    assert edited.status_code == 200, edited.text
    assert float(edited.headers["x-pixyproxy-cost"]) == pytest.approx(
        _estimated(client, edited.json()), abs=2e-6
    )


def test_a_stream_carries_its_cost_when_no_preview_went_out_before_it(client):
    """The headers leave with the first event: without previews that is the finished image, whose cost
    is known; with previews, the cost is not known yet, and no header claims one."""
    body = {"prompt": "a stream", "model": "balanced", "stream": True}
    with client.stream("POST", "/v1/images/generations", json=body) as whole:
        text = "".join(whole.iter_text())
        cost = whole.headers["x-pixyproxy-cost"]
    completed = json.loads(next(line for line in text.splitlines() if line.startswith("data:"))[5:])
    detail = client.get(f"/image/{completed['guid']}").json()
    assert float(cost) == pytest.approx(detail["estimated_cost_usd"]) and float(cost) > 0
    with client.stream("POST", "/v1/images/generations", json={**body, "partial_images": 2}) as previewed:
        assert "image_generation.partial_image" in "".join(previewed.iter_text())
        assert "x-pixyproxy-cost" not in previewed.headers

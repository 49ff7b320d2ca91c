"""PixyProxy in front of an OpenAI-compatible server: the openai SDK -> PixyProxy's /v1 (a real server,
PIXYPROXY_GENERATOR=openai) -> the fake OpenAI server. What the provider makes and reports reaches the
SDK in OpenAI's shape, and is stored on the way."""

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from tests.e2e.server import run_server
from tests.e2e.test_openai_e2e import openai_env
from tests.support.fake_openai import COMPATIBLE_MODEL, DEFAULT_MODEL


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    with run_server(tmp_path_factory.mktemp("openai-proxy"), openai_env(_fake_openai_server)) as running:
        yield running


@pytest.fixture
def sdk(server, fake_openai):
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def listed(http) -> list[dict]:
    return http.get("/image/", params={"limit": 1000}).json()


def png(size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 10, 255)).save(out, format="PNG")
    return out.getvalue()


def test_models_is_the_configured_model(sdk):
    assert [m.id for m in sdk.models.list().data] == [DEFAULT_MODEL]


def test_a_generation_goes_through_and_is_stored(sdk, http, fake_openai):
    answer = sdk.images.generate(
        prompt="a lighthouse", size="1024x1536", quality="high", output_format="webp"
    )
    [call] = fake_openai.generations
    assert call.body == {
        "prompt": "a lighthouse",
        "model": DEFAULT_MODEL,
        "size": "1024x1536",
        "quality": "high",
        "output_format": "webp",
    }
    assert (answer.size, answer.quality, answer.output_format) == ("1024x1536", "high", "webp")
    assert answer.usage.output_tokens == 1056 and answer.usage.input_tokens_details.text_tokens == 2
    guid = answer.data[0].model_extra["guid"]
    assert http.get(f"/image/{guid}/content").content == base64.b64decode(answer.data[0].b64_json)
    assert http.get(f"/image/{guid}").json()["usage"]["total_tokens"] == answer.usage.total_tokens


def test_n_images_are_asked_of_the_provider_at_once(sdk, http, fake_openai):
    fake_openai.barrier = 3  # each call waits until three are in flight: one after another would time out
    before = len(listed(http))
    answer = sdk.images.generate(prompt="three at once", n=3)
    assert len(fake_openai.generations) == 3 and fake_openai.peak_in_flight == 3
    assert all("n" not in call.body for call in fake_openai.generations)  # one image per provider call
    assert len(answer.data) == 3 and len(listed(http)) == before + 3
    assert answer.usage.output_tokens == 3 * 1056  # one usage for the request, as OpenAI reports it


def test_an_edit_forwards_the_uploads(sdk, fake_openai):
    source, reference = png(), png((32, 32))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    mask_bytes = io.BytesIO()
    mask.save(mask_bytes, format="PNG")
    answer = sdk.images.edit(
        image=[("a.png", source, "image/png"), ("b.png", reference, "image/png")],
        mask=("m.png", mask_bytes.getvalue(), "image/png"),
        prompt="invert it",
    )
    [call] = fake_openai.edits
    assert [part["data"] for part in call.body["image[]"]] == [source, reference]
    assert call.body["mask"]["data"] == mask_bytes.getvalue() and call.body["prompt"] == "invert it"
    edited = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json))).convert("RGB")
    assert edited.getpixel((5, 5)) == (245, 55, 245)  # the fake inverts where the mask is transparent


def test_streaming_passes_the_providers_partials_through(sdk, http, fake_openai):
    events = list(sdk.images.generate(prompt="a storm", stream=True, partial_images=2))
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    [call] = fake_openai.generations
    assert call.body["stream"] is True and call.body["partial_images"] == 2
    completed = events[-1]
    assert completed.usage.output_tokens == 1056
    assert http.get(f"/image/{completed.model_extra['guid']}/content").content == base64.b64decode(
        completed.b64_json
    )


def test_the_providers_refusal_is_a_bad_request_that_stores_nothing(sdk, http, fake_openai):
    before = listed(http)
    fake_openai.fail_next("moderation_blocked")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(prompt="refused")
    assert caught.value.body["code"] == "content_policy_violation"
    assert listed(http) == before


def test_the_providers_rate_limit_is_a_503_with_retry_after(sdk, http, fake_openai):
    before = listed(http)
    fake_openai.fail_next("rate_limit", times=2, retry_after=4)  # the adapter's retry is used up too
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.images.generate(prompt="slow down")
    assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "4"
    assert caught.value.body["code"] == "generator_rate_limited"
    assert listed(http) == before


def test_a_compatible_servers_model_and_revised_prompt(tmp_path, _fake_openai_server, fake_openai):
    env = openai_env(_fake_openai_server, model=COMPATIBLE_MODEL)
    with (
        run_server(tmp_path, env) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="unused", max_retries=0) as client,
    ):
        assert [m.id for m in client.models.list().data] == [COMPATIBLE_MODEL]
        answer = client.images.generate(prompt="a fox", response_format="url")
        assert answer.data[0].revised_prompt == "A detailed rendering of: a fox"
        served = httpx.get(answer.data[0].url, timeout=30)  # PixyProxy's copy, not the provider's URL
        assert served.status_code == 200 and answer.data[0].url.startswith(running.base_url)

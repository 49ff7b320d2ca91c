"""The OpenAI-compatible face on the embedded default, over real HTTP, with the official openai SDK as the
client (sync and async): what it makes is stored, listed, served, logged and metered like any image."""

import base64
import hashlib
import io
import time
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import openai
import pytest
from PIL import Image

from tests.e2e.server import run_server
from tests.support.s3 import empty_and_remove_bucket

MODEL = "pixyproxy-offline"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("openai-compatible")) as running:
        yield running


@pytest.fixture
def sdk(server):
    # Keys are off: the SDK insists on a key, PixyProxy ignores it. No retries: each call is one request.
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(server):
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def listed(http) -> list[dict]:
    return http.get("/image/", params={"limit": 1000}).json()


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png(size=(64, 48), colour=(200, 30, 30, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, colour).save(out, format="PNG")
    return out.getvalue()


def half_transparent_mask(size=(64, 48)) -> bytes:
    """Alpha 0 (may change) on the left half, opaque (keep) on the right."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


def test_models_lists_the_configured_model(sdk):
    page = sdk.models.list()
    assert [m.id for m in page.data] == [MODEL]
    assert sdk.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("dall-e-3")
    assert caught.value.body["type"] == "invalid_request_error"


def test_generate_b64_is_the_stored_image(sdk, http):
    answer = sdk.images.generate(prompt="a lighthouse at dusk", size="256x128", quality="low")
    [item] = answer.data
    assert answer.created > 0 and answer.size == "256x128" and answer.output_format == "png"
    assert answer.quality == "low" and item.url is None
    image = decoded(item.b64_json)
    assert (image.format, image.size) == ("PNG", (256, 128))
    guid = item.model_extra["guid"]
    detail = http.get(f"/image/{guid}").json()
    assert detail["prompt"] == "a lighthouse at dusk" and detail["model"] == MODEL
    assert detail["sha256"] == hashlib.sha256(base64.b64decode(item.b64_json)).hexdigest()
    assert listed(http)[0]["guid"] == guid


def test_generate_url_serves_the_stored_image(sdk, http):
    answer = sdk.images.generate(prompt="a kite", response_format="url", output_format="webp")
    [item] = answer.data
    assert item.b64_json is None and answer.output_format == "webp"
    served = httpx.get(item.url, timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
    content = http.get(f"/image/{item.model_extra['guid']}/content")
    assert served.content == content.content


def test_n_3_makes_three_stored_images(sdk, http):
    before = len(listed(http))
    answer = sdk.images.generate(prompt="three foxes", n=3, size="64x64")
    guids = [item.model_extra["guid"] for item in answer.data]
    assert len(set(guids)) == 3
    images = listed(http)
    assert len(images) == before + 3
    assert {d["guid"] for d in images[:3]} == set(guids)
    assert all(d["prompt"] == "three foxes" for d in images[:3])


def test_options_are_honoured_and_reported(sdk):
    answer = sdk.images.generate(
        prompt="a glass", size="96x64", background="transparent", output_format="webp", output_compression=70
    )
    assert (answer.background, answer.output_format, answer.size) == ("transparent", "webp", "96x64")
    image = decoded(answer.data[0].b64_json)
    assert (image.format, image.mode, image.size) == ("WEBP", "RGBA", (96, 64))


def test_edit_multipart_changes_only_where_the_mask_is_transparent(sdk, http):
    source = png()
    answer = sdk.images.edit(
        image=("source.png", source, "image/png"),
        mask=("mask.png", half_transparent_mask(), "image/png"),
        prompt="paint it blue",
    )
    [item] = answer.data
    edited = decoded(item.b64_json).convert("RGBA")
    assert edited.size == (64, 48) and answer.size == "64x48"
    assert edited.getpixel((60, 24)) == (200, 30, 30, 255)  # opaque in the mask: kept
    assert edited.getpixel((2, 40)) != (200, 30, 30, 255)  # transparent in the mask: changed
    detail = http.get(f"/image/{item.model_extra['guid']}").json()
    assert detail["prompt"] == "paint it blue" and detail["parent_guid"] is None  # uploads are not stored
    assert len([d for d in listed(http) if d["sha256"] == hashlib.sha256(source).hexdigest()]) == 0


def test_an_upload_s_filename_is_never_used(server, sdk, http):
    answer = sdk.images.edit(image=("../../../etc/passwd.png", png(), "image/png"), prompt="traversal")
    guid = answer.data[0].model_extra["guid"]
    assert http.get(f"/image/{guid}").json()["filename"] == f"{guid}.png"
    workdir = server.log_path.parent
    assert not any("passwd" in str(p) for p in workdir.rglob("*"))


def test_edit_takes_image_array_and_n(sdk, http):
    before = len(listed(http))
    answer = sdk.images.edit(
        image=[("a.png", png(), "image/png"), ("b.png", png(colour=(0, 90, 0, 255)), "image/png")],
        prompt="merge them",
        n=2,
    )
    assert len(answer.data) == 2 and len(listed(http)) == before + 2


def test_streamed_generation_sends_partials_then_the_stored_image(sdk, http):
    events = list(sdk.images.generate(prompt="a storm", size="64x64", stream=True, partial_images=2))
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    completed = events[-1]
    assert completed.size == "64x64" and completed.output_format == "png"
    assert completed.usage.total_tokens == 0  # the offline generator spends none
    content = http.get(f"/image/{completed.model_extra['guid']}/content").content
    assert base64.b64decode(completed.b64_json) == content


def test_streamed_edit_sends_image_edit_events(sdk):
    events = list(
        sdk.images.edit(image=("s.png", png(), "image/png"), prompt="x", stream=True, partial_images=1)
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


async def test_async_sdk_generates_edits_and_streams(async_sdk, http):
    answer = await async_sdk.images.generate(prompt="async fox", size="32x32", n=2)
    assert len(answer.data) == 2
    edited = await async_sdk.images.edit(image=("s.png", png(), "image/png"), prompt="async edit")
    assert edited.data[0].b64_json
    stream = await async_sdk.images.generate(prompt="async storm", stream=True, partial_images=1)
    kinds = [event.type async for event in stream]
    assert kinds == ["image_generation.partial_image", "image_generation.completed"]
    with pytest.raises(openai.BadRequestError):
        await async_sdk.images.generate(prompt="")


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda c: c.images.generate(prompt=""), "prompt"),
        (lambda c: c.images.generate(prompt="x" * 4001), "prompt"),
        (lambda c: c.images.generate(prompt="x", n=11), "n"),
        (lambda c: c.images.generate(prompt="x", size="8x8"), "size"),
        (lambda c: c.images.generate(prompt="x", model="dall-e-3"), "model"),
        (lambda c: c.images.generate(prompt="x", output_format="jpeg", background="transparent"), None),
        (lambda c: c.images.generate(prompt="x", stream=True, n=2), "n"),
        (lambda c: c.images.edit(image=("a.png", b"not an image", "image/png"), prompt="x"), "image"),
        (
            lambda c: c.images.edit(
                image=("a.png", png(), "image/png"),
                mask=("m.png", half_transparent_mask((10, 10)), "image/png"),
                prompt="x",
            ),
            "mask",
        ),
        (lambda c: c.images.edit(image=("a.png", png()[:60], "image/png"), prompt="x"), "image"),
    ],
    ids=[
        "prompt-empty",
        "prompt-too-long",
        "n-11",
        "size-tiny",
        "model-unknown",
        "jpeg-transparent",
        "stream-n-2",
        "upload-not-an-image",
        "mask-other-size",
        "upload-cut-short",
    ],
)
def test_invalid_requests_are_bad_request_errors_that_store_nothing(sdk, http, call, param):
    before = listed(http)
    with pytest.raises(openai.BadRequestError) as caught:
        call(sdk)
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param
    assert listed(http) == before


def test_errors_outside_v1_keep_their_own_shape_and_v1_unknown_routes_are_openai_shaped(http):
    outside = http.get("/image/not-a-guid").json()
    assert set(outside) == {"detail", "code", "request_id"}
    unknown = http.post("/v1/images/variations", json={"prompt": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"
    not_multipart = http.post("/v1/images/edits", json={"prompt": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["param"] is None
    not_json = http.post("/v1/images/generations", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and set(not_json.json()) == {"error"}
    assert not_json.headers["x-request-id"]


def test_every_v1_request_logs_two_lines_and_is_metered(server, sdk, http):
    def generations() -> float:
        text = http.get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("pixyproxy_generations_total{") and 'outcome="success"' in line
        )

    def ends() -> list[str]:
        return [
            line for line in server.log_text().splitlines() if "END POST /v1/images/generations 200" in line
        ]

    before, ended = generations(), len(ends())
    sdk.images.generate(prompt="metered", n=2, size="32x32")
    assert generations() == before + 2
    deadline = time.monotonic() + 5
    while len(ends()) == ended and time.monotonic() < deadline:  # END is written after the answer is sent
        time.sleep(0.02)
    request_id = ends()[-1].split()[3]
    lines = server.log_text().splitlines()
    assert [line.split("REQUEST ")[1][:3] for line in lines if request_id in line and "REQUEST" in line] == [
        "STA",
        "END",
    ]


@pytest.mark.s3
def test_a_url_answer_on_s3_is_presigned_and_serves_the_stored_bytes(tmp_path, s3_endpoint):
    bucket = f"pixyproxy-v1-{uuid4().hex[:16]}"
    env = {
        **s3_endpoint.env(),
        "PIXYPROXY_STORAGE_URL": f"s3://{bucket}/v1",
        "PIXYPROXY_URL_TTL_SECONDS": "600",
    }
    try:
        with (
            run_server(tmp_path, env) as running,
            openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="unused", max_retries=0) as client,
        ):
            answer = client.images.generate(prompt="on s3", size="64x64", response_format="url")
            url = answer.data[0].url
            query = parse_qs(urlsplit(url).query)
            assert "X-Amz-Signature" in query and query["X-Amz-Expires"] == ["600"]
            content = httpx.get(f"{running.base_url}/image/{answer.data[0].model_extra['guid']}/content")
            assert httpx.get(url, timeout=30).content == content.content
    finally:
        empty_and_remove_bucket(s3_endpoint, bucket)


def test_nothing_above_warning_was_logged_for_all_of_the_above(server):
    """Runs last in this module: every refused request above was the client's fault."""
    log = server.log_text()
    assert " ERROR " not in log and " CRITICAL " not in log and "Traceback" not in log, log[-3000:]

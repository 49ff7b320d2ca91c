"""Every image option over real HTTP, through the real SDK, against the fake OpenAI server: forwarded as
asked, stored on the image, served in its format; every refusal maps and stores nothing; readiness tells
a configured model the server does not offer."""

import io

import httpx
import pytest
from PIL import Image

from tests.e2e.server import run_server
from tests.e2e.test_openai_e2e import openai_env, stored
from tests.support.fake_openai import DEFAULT_MODEL


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    workdir = tmp_path_factory.mktemp("openai-options")
    with run_server(workdir, openai_env(_fake_openai_server)) as running:
        running.workdir = workdir
        yield running


@pytest.fixture
def client(server, fake_openai):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


@pytest.mark.parametrize(
    ("options", "content_type", "pillow", "mode"),
    [
        (
            {"output_format": "webp", "output_compression": 60, "background": "transparent"},
            "image/webp",
            "WEBP",
            "RGBA",
        ),
        (
            {"output_format": "jpeg", "output_compression": 90, "moderation": "low"},
            "image/jpeg",
            "JPEG",
            "RGB",
        ),
        ({"background": "transparent", "size": "1024x1536", "quality": "high"}, "image/png", "PNG", "RGBA"),
    ],
)
def test_each_option_is_forwarded_stored_and_served(client, fake_openai, options, content_type, pillow, mode):
    response = client.post("/image/", json={"prompt": "a kite", **options})
    assert response.status_code == 200, response.text
    detail = response.json()
    [call] = fake_openai.generations
    assert call.body == {"prompt": "a kite", "model": DEFAULT_MODEL, **options}
    for name, value in options.items():
        assert detail[name] == value
    extension = {"image/webp": "webp", "image/jpeg": "jpg", "image/png": "png"}[content_type]
    assert detail["content_type"] == content_type and detail["filename"] == f"{detail['guid']}.{extension}"
    assert detail["usage"]["output_tokens_details"] == {"image_tokens": 1056, "text_tokens": 0}
    assert client.get(f"/image/{detail['guid']}").json() == detail
    content = client.get(f"/image/{detail['guid']}/content")
    assert content.status_code == 200 and content.headers["content-type"] == content_type
    assert content.headers["etag"] == f'"{detail["sha256"]}"'
    with Image.open(io.BytesIO(content.content)) as image:
        assert (image.format, image.mode) == (pillow, mode)
    head = client.head(f"/image/{detail['guid']}/content")
    assert head.headers["content-type"] == content_type and head.content == b""
    part = client.get(f"/image/{detail['guid']}/content", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == content.content[:10]


@pytest.mark.parametrize(
    ("body", "calls", "in_detail"),
    [
        # What the model's table (the SDK's own documentation) says it cannot take: nothing sent.
        ({"size": "1000x1000"}, 0, f"size: model {DEFAULT_MODEL!r} cannot draw 1000x1000"),
        ({"quality": "hd"}, 0, f"quality: model {DEFAULT_MODEL!r} takes"),
        ({"model": "gpt-image-1"}, 1, "model: "),  # shut down; the client named it
        ({"size": "8x8"}, 0, "size"),  # our shape check: nothing sent
        ({"output_format": "png", "output_compression": 50}, 0, "output_compression"),
        ({"output_format": "jpeg", "background": "transparent"}, 0, "background"),
        ({"moderation": "none"}, 0, "moderation"),
        ({"n": 2}, 0, "/image/jobs"),  # says where several images are made
    ],
)
def test_every_refusal_is_a_422_that_stores_nothing(server, client, fake_openai, body, calls, in_detail):
    before = stored(server, client)
    response = client.post("/image/", json={"prompt": "refused", **body})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request" and in_detail in response.json()["detail"]
    assert len(fake_openai.generations) == calls
    assert stored(server, client) == before


def test_a_configured_model_the_server_lacks_is_a_502_naming_the_setting_and_not_ready(
    tmp_path, _fake_openai_server, fake_openai
):
    with run_server(tmp_path, openai_env(_fake_openai_server, model="gpt-image-1")) as running:
        # Said at start, before any request: the lifespan starts the generator, which asks /v1/models.
        [said] = [line for line in running.log_text().splitlines() if "not offered by the image" in line]
        assert " ERROR " in said and "'gpt-image-1' (PIXYPROXY_OPENAI_MODEL)" in said
        assert "gpt-image-2.6-sunburst" in said and "text-embedding" not in said  # the image models offered
        assert [r.path for r in fake_openai.requests] == ["/v1/models"]
        with httpx.Client(base_url=running.base_url, timeout=30) as http:
            response = http.post("/image/", json={"prompt": "x"})
            assert response.status_code == 502, response.text
            assert response.json()["code"] == "generator_model_unavailable"
            assert "PIXYPROXY_OPENAI_MODEL" in response.json()["detail"]
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert "model 'gpt-image-1' is not offered by the server" in ready.json()["checks"]["generator"]
            assert http.get("/image/").json() == []


def test_a_server_without_a_models_list_stays_ready(tmp_path, _fake_openai_server, fake_openai):
    fake_openai.models_endpoint = False
    with (
        run_server(tmp_path, openai_env(_fake_openai_server)) as running,
        httpx.Client(base_url=running.base_url, timeout=30) as http,
    ):
        assert http.get("/readyz").status_code == 200
        assert http.post("/image/", json={"prompt": "x"}).status_code == 200

"""gif and svg on the embedded default: made by the offline generator as asked (frames, their delay, a
small SVG), stored and served in their own type, an SVG under a sandboxing CSP with nosniff; their width
variants are rasters (a gif's first frame; an svg drawn by resvg); every new option is honoured or
refused by name, on /image/, jobs and /v1."""

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageChops, ImageStat

from tests.support.embedded import in_process_app

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(in_process_app(tmp_path_factory.mktemp("gif-svg"))) as http:
        yield http


def test_a_gif_has_the_frames_and_delay_asked_and_its_variant_is_the_first_frame(client):
    body = {"prompt": "a spinning top", "size": "256x128", "output_format": "gif"}
    response = client.post("/image/", json={**body, "frame_count": 5, "frame_duration_ms": 120})
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["content_type"] == "image/gif" and detail["filename"].endswith(".gif")
    assert (detail["width"], detail["height"], detail["provider"]) == (256, 128, "offline")
    content = client.get(f"/image/{detail['guid']}/content")
    assert content.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(content.content)) as gif:
        assert (gif.format, gif.n_frames, gif.info["duration"]) == ("GIF", 5, 120)
        frames = []
        for index in (0, 2):
            gif.seek(index)
            frames.append(gif.convert("RGB").resize((128, 64)))
    variant = client.get(f"/image/{detail['guid']}/content?width=128")
    assert variant.status_code == 200 and variant.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(variant.content)) as png:
        assert png.size == (128, 64)
        drawn = png.convert("RGB")
    # The first frame's picture, not another frame's (the offline gif slides its shapes across frames).
    first, third = (sum(ImageStat.Stat(ImageChops.difference(drawn, f)).mean) for f in frames)
    assert first < third


def test_an_svg_is_served_sandboxed_and_its_width_variant_is_drawn_by_resvg(client):
    svg = {"model": "svg-author-1", "reasoning": {"effort": "low"}}
    response = client.post(
        "/image/",
        json={"prompt": "a lighthouse", "size": "300x200", "output_format": "svg", "svg": svg},
    )
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["content_type"] == "image/svg+xml" and (detail["width"], detail["height"]) == (300, 200)
    content = client.get(f"/image/{detail['guid']}/content")
    assert content.headers["content-type"] == "image/svg+xml"
    assert content.headers["content-security-policy"] == SVG_POLICY
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.content.startswith(b"<svg") and b"svg-author-1" in content.content
    variant = client.get(f"/image/{detail['guid']}/content?width=64")
    assert variant.headers["content-type"] == "image/png"
    assert "content-security-policy" not in variant.headers
    with Image.open(io.BytesIO(variant.content)) as png:
        assert png.size == (64, 43)
        assert len(png.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 3  # drawn, not blank


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"frame_count": 4}, "frame_count is for output_format gif only"),
        ({"output_format": "gif", "frame_count": 17}, "frame_count"),
        ({"output_format": "png", "svg": {"model": "a"}}, "svg is for output_format svg only"),
        ({"output_format": "svg", "svg": {"model": "a", "colour": 1}}, "svg.colour"),
        ({"output_format": "gif", "output_compression": 50}, "output_compression"),
        ({"complexity": "extreme"}, "complexity"),
        ({"sise": "256x256"}, "sise"),
    ],
)
def test_each_new_option_is_checked_and_an_unknown_field_named(client, body, named):
    response = client.post("/image/", json={"prompt": "x", **body})
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"]


def test_the_embedded_default_takes_the_largest_sizes_and_qualities(client):
    response = client.post(
        "/image/", json={"prompt": "wide", "size": "3840x2160", "quality": "xhigh", "complexity": "high"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["width"], response.json()["height"]) == (3840, 2160)


def test_v1_makes_an_svg_and_a_job_a_gif(client):
    answer = client.post("/v1/images/generations", json={"prompt": "x", "output_format": "svg"})
    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.json()["data"][0]["b64_json"]).startswith(b"<svg")
    assert answer.json()["output_format"] == "svg"
    job = client.post("/image/jobs", json={"prompt": "x", "output_format": "gif", "frame_count": 2})
    assert job.status_code == 202, job.text
    refused = client.post("/image/jobs", json={"prompt": "x", "output_format": "gif", "partial_images": 2})
    assert refused.status_code == 422 and "partial_images" in refused.json()["detail"]

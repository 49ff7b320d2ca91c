"""/v1 answers `b64_json` from the bytes it has just stored, never read back from storage (from S3 that
read would be one more request): for one image, several, a stream and an edit."""

import base64
import hashlib
import io
import json

import httpx
import pytest
from dependency_injector import providers
from PIL import Image

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container

MODEL = "pixyproxy-offline"


class OpensCounted(FileBlobStore):
    """The local folder store, with every read of an image's bytes written down."""

    opened: list[str]

    async def open(self, key: str, start: int = 0, end: int | None = None):
        self.opened.append(key)
        return await super().open(key, start, end)


@pytest.fixture
async def app(tmp_path):
    container = embedded_container(tmp_path)
    blobs = OpensCounted(tmp_path / "images")
    blobs.opened = []
    container.blobs.override(providers.Object(blobs))
    application = create_app(container)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
            yield client, blobs


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (64, 48), (200, 30, 30, 255)).save(out, format="PNG")
    return out.getvalue()


def completed_event(text: str) -> dict:
    events = [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]
    (done,) = [e for e in events if e["type"].endswith(".completed")]
    return done


async def answer(client: httpx.AsyncClient, call: str) -> list[dict]:
    """Each image's b64_json and guid, as the call's answer gives them."""
    if call == "edit":
        files = {"image": ("a.png", png(), "image/png")}
        response = await client.post(
            "/v1/images/edits", data={"prompt": "a fox", "model": MODEL}, files=files
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]
    body: dict = {"prompt": "a fox", "model": MODEL}
    if call == "stream":
        body |= {"stream": True, "partial_images": 1}
        response = await client.post("/v1/images/generations", json=body)
        assert response.status_code == 200, response.text
        return [completed_event(response.text)]
    body["n"] = 2 if call == "two" else 1
    response = await client.post("/v1/images/generations", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize("call", ["one", "two", "stream", "edit"])
async def test_b64_json_is_the_stored_image_and_nothing_was_read_back(app, call):
    client, blobs = app
    images = await answer(client, call)
    assert blobs.opened == []  # answered without opening what was just stored
    assert len(images) == (2 if call == "two" else 1)
    for image in images:
        detail = (await client.get(f"/image/{image['guid']}")).json()
        assert hashlib.sha256(base64.b64decode(image["b64_json"])).hexdigest() == detail["sha256"]

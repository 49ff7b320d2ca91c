"""Races over HTTP, in process (the steps are ordered with events, so the app runs in the test's loop):
many first requests for one variant make one encode; a delete racing a download leaves the download
whole or a 404, never a truncated 200."""

import asyncio
import hashlib
import io

import httpx
import pytest
from dependency_injector import providers
from PIL import Image

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.domain.variants import VariantMaker
from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container


class GatedFileStore(FileBlobStore):
    """A file store whose open() of `gated` stops before (or after) opening until release()."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.gated: str | None = None
        self.after_open = False
        self.reached = asyncio.Event()
        self.released = asyncio.Event()
        self.puts: list[str] = []

    async def open(self, key, start=0, end=None):
        if key != self.gated:
            return await super().open(key, start, end)
        if not self.after_open:
            self.reached.set()
            await self.released.wait()
            return await super().open(key, start, end)
        stream = await super().open(key, start, end)
        self.reached.set()
        await self.released.wait()
        return stream

    async def put(self, key, data, content_type):
        self.puts.append(key)
        await super().put(key, data, content_type)


class CountingMaker(VariantMaker):
    """Counts requests arriving; `all_arrived` is set when `expected` of them have."""

    def __init__(self, blobs, expected: int) -> None:
        super().__init__(blobs, max_concurrent_encodes=2)
        self.arrived, self.expected = 0, expected
        self.all_arrived = asyncio.Event()

    async def find_or_make(self, *args):
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_arrived.set()  # this one, too, reaches its first wait with no await in between
        return await super().find_or_make(*args)


@pytest.fixture
async def app_and_store(tmp_path):
    container = embedded_container(tmp_path)
    store = GatedFileStore(tmp_path / "images")
    container.blobs.override(providers.Object(store))
    app = create_app(container)
    async with app.router.lifespan_context(app):
        yield app, container, store


def client_of(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60)


@pytest.mark.parametrize("count", [50])
async def test_fifty_concurrent_first_requests_make_one_encode(app_and_store, count):
    app, container, store = app_and_store
    maker = CountingMaker(container.metered_blobs(), expected=count)
    container.variants.override(providers.Object(maker))
    async with client_of(app) as client:
        image = (await client.post("/image/", json={"prompt": "one encode", "size": "1024x1024"})).json()
        store.gated = image["filename"]  # the leader holds while reading the original
        url = f"/image/{image['guid']}/content?width=256&format=webp"
        requests = [asyncio.create_task(client.get(url)) for _ in range(count)]
        await store.reached.wait()
        await maker.all_arrived.wait()
        store.released.set()
        answers = await asyncio.gather(*requests)
    assert maker.encoded == 1
    assert [k for k in store.puts if k != image["filename"]] == [f"{image['guid']}.w256.webp"]
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1 and len({a.headers["etag"] for a in answers}) == 1
    with Image.open(io.BytesIO(answers[0].content)) as decoded:
        assert decoded.size == (256, 256) and decoded.format == "WEBP"


async def test_a_download_that_opened_the_bytes_completes_whole_after_a_delete(app_and_store):
    app, _, store = app_and_store
    async with client_of(app) as client:
        image = (await client.post("/image/", json={"prompt": "whole", "size": "1024x1024"})).json()
        store.gated, store.after_open = image["filename"], True
        download = asyncio.create_task(client.get(f"/image/{image['guid']}/content"))
        await store.reached.wait()  # the download holds an open file
        assert (await client.delete(f"/image/{image['guid']}")).status_code == 204
        store.released.set()
        answer = await download
    assert answer.status_code == 200
    assert len(answer.content) == image["size_bytes"]
    assert hashlib.sha256(answer.content).hexdigest() == image["sha256"]


@pytest.mark.parametrize("query", ["", "?width=64&format=webp"])
async def test_a_download_that_read_only_the_row_is_a_404_after_a_delete(app_and_store, query):
    app, _, store = app_and_store
    async with client_of(app) as client:
        image = (await client.post("/image/", json={"prompt": "404", "size": "512x512"})).json()
        store.gated = image["filename"]
        download = asyncio.create_task(client.get(f"/image/{image['guid']}/content{query}"))
        await store.reached.wait()  # the row is read, the bytes not yet opened
        assert (await client.delete(f"/image/{image['guid']}")).status_code == 204
        store.released.set()
        answer = await download
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "image_not_found"

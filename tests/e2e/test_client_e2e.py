"""The Python client against the real service (`pixyproxy serve` in a subprocess, offline generator)."""

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest

from pixyproxy.client import (
    AsyncPixyProxyClient,
    AuthenticationError,
    IdempotencyConflict,
    ImageDetail,
    InvalidRequest,
    NotFound,
    PixyProxyClient,
    PixyProxyConnectionError,
    RetryPolicy,
)
from tests.e2e.server import free_port, run_server

API_KEY = "client-e2e-key-7c1d"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("client-e2e")
    with run_server(workdir) as running:
        yield running


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    with PixyProxyClient(server.base_url) as client:
        yield client


def test_generate_get_content_url_and_download(client, tmp_path):
    image = client.generate("a lighthouse at dusk, watercolour", size="320x256", quality="low")
    assert isinstance(image, ImageDetail)
    assert (image.prompt, image.width, image.height, image.quality) == (
        "a lighthouse at dusk, watercolour",
        320,
        256,
        "low",
    )
    assert client.get(image.guid) == image
    assert client.get(str(image.guid)) == image

    png = client.content(image)
    assert png.startswith(b"\x89PNG") and hashlib.sha256(png).hexdigest() == image.sha256

    link = client.url(image.guid)
    assert httpx.get(link.url).content == png  # a plain GET of the URL serves the same bytes

    saved = client.download(image.guid, tmp_path / "lighthouse.png")
    assert saved.read_bytes() == png


def test_list_follows_the_link_pages_over_everything(client):
    made = [client.generate(f"list page test {i}").guid for i in range(5)]
    listed = [image.guid for image in client.list(page_size=2)]
    assert len(listed) == len(set(listed))  # no image twice across pages
    assert listed[:5] == made[::-1]  # newest first
    assert len(listed) >= 5


def test_server_errors_arrive_as_typed_exceptions_with_code_and_request_id(client):
    with pytest.raises(NotFound) as caught:
        client.get("00000000-0000-4000-8000-000000000000")
    assert caught.value.code == "image_not_found" and caught.value.request_id
    assert caught.value.detail == "No image has that guid."

    with pytest.raises(InvalidRequest) as caught:
        client.generate("a fox", size="2x2")
    assert caught.value.status_code == 422 and "size" in caught.value.detail

    with pytest.raises(NotFound):
        client.content("../../etc/passwd")


def test_one_idempotency_key_gives_one_image_and_a_different_body_is_refused(client):
    first = client.generate("an idempotent fox", idempotency_key="e2e-key-1")
    again = client.generate("an idempotent fox", idempotency_key="e2e-key-1")
    assert again.guid == first.guid
    with pytest.raises(IdempotencyConflict) as caught:
        client.generate("a different fox", idempotency_key="e2e-key-1")
    assert caught.value.code == "idempotency_conflict"


class LoseFirstAnswer(httpx.HTTPTransport):
    """Delivers the first POST to the server, then drops the answer as a broken connection would."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.posts.append(request)
            if len(self.posts) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the server answered")
        return response


def test_a_retry_after_a_lost_answer_returns_the_image_already_made(server):
    transport = LoseFirstAnswer()
    prompt = "the answer to this one is lost on the way back"
    with PixyProxyClient(server.base_url, transport=transport, retry=RetryPolicy(backoff=0)) as client:
        image = client.generate(prompt)
        same_prompt = [i for i in client.list() if i.prompt == prompt]
    assert len(transport.posts) == 2
    assert transport.posts[0].headers["idempotency-key"] == transport.posts[1].headers["idempotency-key"]
    assert [i.guid for i in same_prompt] == [image.guid]  # the server made one image, not two


async def test_async_client_runs_generations_concurrently_and_reads_back(server, tmp_path):
    async with AsyncPixyProxyClient(server.base_url) as client:
        images = await asyncio.gather(*(client.generate(f"async fox {i}") for i in range(4)))
        assert len({image.guid for image in images}) == 4
        fetched = await client.get(images[0].guid)
        assert fetched == images[0]
        listed = [image.guid async for image in client.list(page_size=3)]
        assert {image.guid for image in images} <= set(listed)
        png = await client.content(images[1])
        assert hashlib.sha256(png).hexdigest() == images[1].sha256
        saved = await client.download(images[2], tmp_path / "async.png")
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == images[2].sha256
        with pytest.raises(NotFound):
            await client.get("00000000-0000-4000-8000-000000000000")


def test_api_key_from_the_environment(tmp_path, monkeypatch):
    with run_server(tmp_path, {"PIXYPROXY_API_KEYS": API_KEY}) as keyed:
        monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
        with PixyProxyClient(keyed.base_url) as anonymous, pytest.raises(AuthenticationError) as caught:
            anonymous.generate("a fox")
        assert caught.value.status_code == 401 and caught.value.request_id

        monkeypatch.setenv("PIXYPROXY_API_KEY", API_KEY)
        with PixyProxyClient(keyed.base_url) as client:
            image = client.generate("a fox with a key")
            assert client.get(image.guid).prompt == "a fox with a key"
            assert API_KEY not in repr(client)
    assert API_KEY not in Path(keyed.log_path).read_text()


def test_an_unreachable_server_is_a_connection_error():
    url = f"http://127.0.0.1:{free_port()}"
    retry = RetryPolicy(max_retries=1, backoff=0)
    with PixyProxyClient(url, retry=retry) as client, pytest.raises(PixyProxyConnectionError) as caught:
        client.get("00000000-0000-4000-8000-000000000000")
    assert url in str(caught.value)

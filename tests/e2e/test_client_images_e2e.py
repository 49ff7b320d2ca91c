"""The Python client's delete, search and filters, variants, usage report and downloads, sync and async,
against the real service (`pixyproxy serve` in a subprocess, offline generator)."""

import io
import os
import stat
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from PIL import Image

from pixyproxy.client import AsyncPixyProxyClient, InvalidRequest, NotFound, PixyProxyClient, UsageReport
from tests.e2e.server import run_server

WEBP = (b"RIFF", b"WEBP")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("client-images")) as running:
        yield running


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    with PixyProxyClient(server.base_url) as client:
        yield client


def a_word() -> str:
    """A word no other image's prompt has (letters only: the search indexes words of letters)."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def test_delete_makes_the_image_a_404_everywhere(client) -> None:
    image = client.generate("a fox to be deleted", size="256x256")
    client.content(image, width=64)  # a variant too: it goes with the image
    assert client.delete(image) is None
    for read in (client.get, client.content, client.url, client.delete):
        with pytest.raises(NotFound):
            read(image.guid)


def test_list_searches_the_prompt_and_filters_by_model_and_time(client) -> None:
    word = a_word()
    first, second = (client.generate(f"a {word} kite number {i}", size="64x64") for i in range(2))
    client.generate("a kite without the word", size="64x64")

    assert [i.guid for i in client.list(q=word.upper())] == [second.guid, first.guid]
    assert [i.guid for i in client.list(q=f"{word} number", page_size=1)] == [second.guid, first.guid]
    assert [i.guid for i in client.list(q=word, model="another-model")] == []
    assert [i.guid for i in client.list(q=word, model=first.model)] == [second.guid, first.guid]
    # The window is exclusive at both ends; a datetime or RFC 3339 text.
    assert [i.guid for i in client.list(q=word, created_after=first.created_at)] == [second.guid]
    before = second.created_at.isoformat().replace("+00:00", "Z")
    assert [i.guid for i in client.list(q=word, created_before=before)] == [first.guid]
    later = second.created_at + timedelta(seconds=1)
    assert list(client.list(q=word, created_after=later)) == []


def test_filters_the_server_refuses_and_naive_datetimes_are_errors(client) -> None:
    with pytest.raises(InvalidRequest, match="created_after"):
        list(client.list(created_after="yesterday"))
    with pytest.raises(ValueError, match="created_before: a datetime needs a time zone"):
        list(client.list(created_before=datetime(2026, 1, 1)))


def test_variants_by_width_and_format_from_content_url_and_download(client, tmp_path) -> None:
    image = client.generate("a lighthouse for variants", size="512x256")
    small = client.content(image, width=128, format="webp")
    assert (small[:4], small[8:12]) == WEBP
    assert Image.open(io.BytesIO(small)).size == (128, 64)
    assert client.content(image, format="jpeg").startswith(b"\xff\xd8\xff")

    link = client.url(image, width=64)
    assert Image.open(io.BytesIO(httpx.get(link.url).content)).size == (64, 32)

    saved = client.download(image, tmp_path / "small.webp", width=256, format="webp")
    assert Image.open(saved).size == (256, 128)
    with pytest.raises(InvalidRequest, match="width"):
        client.content(image, width=65)
    with pytest.raises(InvalidRequest, match="format"):
        client.content(image, format="gif")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_download_has_the_permissions_the_umask_gives(client, tmp_path, umask, mode) -> None:
    image = client.generate("a fox with ordinary permissions", size="64x64")
    old = os.umask(umask)
    try:
        saved = client.download(image, tmp_path / "fox.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(saved.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["fox.png"]  # no partial file left behind


def test_usage_counts_todays_images(client) -> None:
    before = client.usage()
    client.generate("one more for the usage report", size="64x64")
    after = client.usage()
    assert isinstance(after, UsageReport)
    assert sum(k.images for k in after.keys) == sum(k.images for k in before.keys) + 1
    assert after.keys[0].key is None  # keys are off: one line, for images made without a key
    today = datetime.now(UTC).date()
    window = client.usage(since=today, until=today + timedelta(days=1))
    assert window.since == datetime(today.year, today.month, today.day, tzinfo=UTC)
    assert sum(k.images for k in window.keys) == sum(k.images for k in after.keys)
    assert client.usage(since=date(2000, 1, 1), until="2000-01-02").keys == []
    with pytest.raises(InvalidRequest, match="until"):
        client.usage(since="2026-01-02", until="2026-01-01")


async def test_the_async_client_does_the_same(server, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    word = a_word()
    async with AsyncPixyProxyClient(server.base_url) as client:
        image = await client.generate(f"an async {word}", size="256x256")
        assert [i.guid async for i in client.list(q=word, model=image.model)] == [image.guid]
        small = await client.content(image, width=64, format="webp")
        assert Image.open(io.BytesIO(small)).size == (64, 64)
        saved = await client.download(image, tmp_path / "a.jpg", format="jpeg")
        assert saved.read_bytes().startswith(b"\xff\xd8\xff")
        assert (await client.url(image, format="webp")).url.endswith("format=webp")
        assert sum(k.images for k in (await client.usage()).keys) >= 1
        await client.delete(image)
        with pytest.raises(NotFound):
            await client.get(image)
        assert [i.guid async for i in client.list(q=word)] == []

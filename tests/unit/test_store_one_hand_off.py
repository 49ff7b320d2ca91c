"""A generated image is checked, hashed and written in one hand-off to a thread when nothing in it needs
decoding (a PNG kept as a PNG); what is decoded (a conversion, a WebP check) waits for a decode slot and
is written after. Either way the stored bytes, name and hash are the checked ones."""

import asyncio
import hashlib
import io

import pytest
from PIL import Image

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.domain.errors import GeneratorError
from tests.support.fakes import InMemoryImageRepository, ScriptedGenerator, png_bytes
from tests.support.use_cases import build_use_cases


@pytest.fixture
def hand_offs(monkeypatch):
    """Every asyncio.to_thread call made while the test runs, by the name of what it ran."""
    calls: list[str] = []
    real = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return calls


@pytest.fixture
async def folder(tmp_path):
    store = FileBlobStore(tmp_path / "images", min_free_bytes=0)
    await store.init()
    return store


async def test_a_png_is_checked_and_written_in_one_hand_off(folder, hand_offs):
    image = png_bytes(64, 48)
    cases = build_use_cases(ScriptedGenerator(image), InMemoryImageRepository(), folder)
    detail = await cases.generate({"prompt": "a fox"})
    assert len(hand_offs) == 1
    stored = (folder.root / detail.filename).read_bytes()
    assert stored == image and detail.filename == f"{detail.guid}.png"
    assert detail.sha256 == hashlib.sha256(image).hexdigest() and (detail.width, detail.height) == (64, 48)


async def test_a_conversion_is_decoded_in_a_slot_then_written(folder, hand_offs):
    webp = png_bytes(32, 32, fmt="WEBP")  # a server that ignored output_format=png
    cases = build_use_cases(ScriptedGenerator(webp), InMemoryImageRepository(), folder)
    detail = await cases.generate({"prompt": "a fox"})
    assert len(hand_offs) == 2  # the decode (in a slot), then the write
    with Image.open(io.BytesIO((folder.root / detail.filename).read_bytes())) as stored:
        assert (stored.format, stored.size) == ("PNG", (32, 32))
    assert detail.content_type == "image/png" and detail.filename.endswith(".png")


async def test_bytes_that_are_no_image_are_refused_and_nothing_is_written(folder):
    repository = InMemoryImageRepository()
    broken = png_bytes()[:-30]  # a PNG cut short
    cases = build_use_cases(ScriptedGenerator(broken), repository, folder)
    with pytest.raises(GeneratorError):
        await cases.generate({"prompt": "a fox"})
    assert list(folder.root.iterdir()) == [] and repository.rows == []


async def test_a_row_that_fails_removes_the_bytes_written_with_the_check(folder):
    class Refuses(InMemoryImageRepository):
        async def add(self, detail, idempotency_key=None, request_hash=None) -> None:
            raise RuntimeError("the database said no")

    cases = build_use_cases(ScriptedGenerator(), Refuses(), folder)
    with pytest.raises(RuntimeError):
        await cases.generate({"prompt": "a fox"})
    assert list(folder.root.iterdir()) == []

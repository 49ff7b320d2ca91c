"""Memory bounded by design: pixels budgeted from the headers before any decode, PNG data that ends
early refused (uploads and generator output), few decodes at once, each stored image read once."""

import asyncio
import io
import struct
import threading
import zlib
from datetime import UTC, datetime
from hashlib import sha256
from uuid import uuid4

import pytest
from PIL import Image, ImageFile

from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from pixyproxy.domain.errors import GeneratorError, InvalidImageRequest
from pixyproxy.domain.image_formats import check_image, read_upload
from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.pixel_budget import (
    DECODE_SLOTS,
    MAX_REQUEST_PIXELS,
    ReadOnce,
    decode_slot,
    in_decode_slot,
    png_data_complete,
)
from pixyproxy.domain.usecases.edit_uploads import read_uploads
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository
from tests.support.use_cases import UseCases, build_use_cases


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, raw: bytes = b"\x00" * 100, colour: int = 6) -> bytes:
    """A well-formed PNG whose header says width x height and whose data inflates to `raw` only."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def interlaced_png(width: int, height: int, cut: int = 0) -> bytes:
    """An Adam7 RGB PNG made by hand (Pillow writes none), its raw data `cut` bytes short."""
    passes = (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    )
    raw = b""
    for x0, y0, dx, dy in passes:
        w = len(range(x0, width, dx))
        h = len(range(y0, height, dy))
        if w and h:
            raw += (b"\x00" + bytes(i % 256 for i in range(3 * w))) * h
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    body = zlib.compress(raw[: len(raw) - cut])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def encoded(mode: str, size: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 64).convert(mode).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "1", "P", "I;16"])
@pytest.mark.parametrize("size", [(1, 1), (7, 3), (100, 37), (640, 480)])
def test_complete_pngs_of_every_kind_pass(mode, size):
    assert png_data_complete(encoded(mode, size))


@pytest.mark.parametrize("size", [(1, 1), (9, 9), (33, 17), (256, 200)])
def test_interlaced_pngs_are_counted_pass_by_pass(size):
    whole = interlaced_png(*size)
    with Image.open(io.BytesIO(whole)) as image:
        image.load()  # Pillow reads it: the hand-made file is a real interlaced PNG
    assert png_data_complete(whole)
    assert not png_data_complete(interlaced_png(*size, cut=1))


@pytest.mark.parametrize(
    "data",
    [
        png_claiming(4096, 4096),  # 100 bytes of rows where 64 MiB were promised
        png_claiming(64, 64, b"\x00" * (64 * (1 + 64 * 4) - 1)),  # one byte short
        encoded("RGB", (300, 300))[:-2000],  # cut inside its data
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b""),
    ],
    ids=["header-4096-data-100-bytes", "one-byte-short", "cut", "no-idat"],
)
def test_short_png_data_is_refused_everywhere(data):
    assert not png_data_complete(data)
    with pytest.raises(InvalidImageRequest, match=r"^image: the png image cannot be read"):
        read_upload(data, "image", "image-0")
    with pytest.raises(GeneratorError):
        check_image(data, "png")


def test_the_short_bomb_is_refused_without_decoding(monkeypatch):
    def no_decode(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(InvalidImageRequest, match="cut short"):
        read_upload(png_claiming(4096, 4096), "image", "image-0")
    with pytest.raises(InvalidImageRequest, match="at most 16,777,216 pixels"):
        read_upload(png_claiming(4097, 4096), "image", "image-0")


async def test_a_request_over_the_pixel_budget_is_refused_from_its_headers(monkeypatch):
    """Sixteen 96-byte PNGs claiming 4096x4096 each, and a mask: a 422 before any of them is decoded."""
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    bombs = [png_claiming(4096, 4096)] * 16
    with pytest.raises(InvalidImageRequest, match=f"at most {MAX_REQUEST_PIXELS:,}"):
        await read_uploads(bombs, png_claiming(4096, 4096))
    assert decoded == []


async def test_uploads_within_the_budget_are_read():
    uploads = await read_uploads([encoded("RGB", (64, 48))] * 3, encoded("RGBA", (64, 48)))
    images, mask = uploads.images, uploads.mask
    assert [(i.width, i.height) for i in images] == [(64, 48)] * 3 and mask is not None


def stored(cases: UseCases, size: tuple[int, int]) -> ImageDetail:
    data, guid = encoded("RGB", size), uuid4()
    detail = ImageDetail(
        guid=guid,
        prompt="stored",
        filename=f"{guid}.png",
        created_at=datetime.now(UTC),
        size_bytes=len(data),
        width=size[0],
        height=size[1],
        model="test",
        sha256=sha256(data).hexdigest(),
    )
    cases.blobs.blobs[detail.filename] = (data, "image/png", datetime.now(UTC))  # type: ignore[attr-defined]
    return detail


class CountingBlobs(InMemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    async def open(self, key, start=0, end=None):
        self.opened.append(key)
        return await super().open(key, start, end)


async def test_a_reference_named_fifteen_times_is_read_once():
    blobs, repository = CountingBlobs(), InMemoryImageRepository()
    cases = build_use_cases(OfflineImageGenerator(), repository, blobs)
    source, reference = stored(cases, (64, 64)), stored(cases, (32, 32))
    for detail in (source, reference):
        await repository.add(detail)
    edited = await cases.edit(
        source.guid, {"prompt": "fifteen times", "reference_guids": [str(reference.guid)] * 15}
    )
    assert edited.reference_guids == [reference.guid] * 15
    assert sorted(blobs.opened) == sorted([source.filename, reference.filename])


async def test_a_stored_edit_over_the_budget_reads_nothing():
    blobs, repository = CountingBlobs(), InMemoryImageRepository()
    cases = build_use_cases(OfflineImageGenerator(), repository, blobs)
    source = stored(cases, (64, 64))
    big = source.model_copy(update={"guid": uuid4(), "width": 4096, "height": 4096})
    for detail in (source, big):
        await repository.add(detail)
    with pytest.raises(InvalidImageRequest, match="add up to"):
        await cases.edit(source.guid, {"prompt": "x", "reference_guids": [str(big.guid)] * 4})
    assert blobs.opened == []


async def test_read_once_keys_by_what_it_is_told():
    calls = []

    async def read(item: str) -> str:
        calls.append(item)
        return item.upper()

    once = ReadOnce(read, key=lambda item: item)
    assert [await once(x) for x in ["a", "b", "a", "a"]] == ["A", "B", "A", "A"]
    assert calls == ["a", "b"]


async def test_at_most_the_slots_decode_at_once():
    started = threading.Semaphore(0)
    release = threading.Event()
    running, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        started.release()
        release.wait(10)
        with lock:
            running -= 1

    tasks = [asyncio.create_task(in_decode_slot(work)) for _ in range(DECODE_SLOTS + 3)]
    for _ in range(DECODE_SLOTS):
        await asyncio.to_thread(started.acquire, True, 10)
    for _ in range(20):
        await asyncio.sleep(0)  # every task has had its turn to try for a slot
    assert running == DECODE_SLOTS
    assert decode_slot().locked() and sum(not t.done() for t in tasks) == DECODE_SLOTS + 3
    release.set()
    await asyncio.gather(*tasks)
    assert peak == DECODE_SLOTS

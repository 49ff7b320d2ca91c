"""BlobStore.put_prepared, run against every adapter in BLOB_STORE_ADAPTERS: what `prepare` makes is
stored and handed back; when `prepare` fails, nothing is stored and its error is the answer."""

import os
import threading
from dataclasses import dataclass
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import StorageUnavailable


@dataclass(frozen=True)
class Made:
    key: str
    data: bytes
    content_type: str = "image/png"


async def read_all(stream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_what_prepare_makes_is_stored_and_handed_back(blob_store):
    made = Made(f"{uuid4()}.png", os.urandom(200_000))
    assert await blob_store.put_prepared(lambda: made) is made
    assert await read_all(await blob_store.open(made.key)) == made.data


async def test_a_failed_prepare_stores_nothing(blob_store):
    key = f"{uuid4()}.png"

    def prepare() -> Made:
        raise ValueError("not an image")

    with pytest.raises(ValueError, match="not an image"):
        await blob_store.put_prepared(prepare)
    assert await blob_store.open(key) is None


async def test_put_prepared_never_overwrites_another_image(blob_store):
    key = f"{uuid4()}.png"
    await blob_store.put(key, b"first", "image/png")
    with pytest.raises(StorageUnavailable):
        await blob_store.put_prepared(lambda: Made(key, b"second"))
    assert await read_all(await blob_store.open(key)) == b"first"


async def test_the_file_store_prepares_off_the_event_loop(file_blob_store):
    threads: list[int] = []

    def prepare() -> Made:
        threads.append(threading.get_ident())
        return Made(f"{uuid4()}.png", b"bytes")

    await file_blob_store.put_prepared(prepare)
    assert threads and threads[0] != threading.get_ident()  # off the event loop

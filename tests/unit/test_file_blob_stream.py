"""The folder store's reads: ranges and large images come back whole, and no descriptor outlives its
stream, read or not."""

import gc
import os
import uuid

from pixyproxy.adapters.file_blob_store import CHUNK, FileBlobStore
from pixyproxy.domain.streams import read_whole


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_an_image_larger_than_a_chunk_is_read_whole_and_in_ranges(tmp_path) -> None:
    store = FileBlobStore(tmp_path, min_free_bytes=0)
    await store.init()
    key = f"{uuid.uuid4()}.png"
    data = os.urandom(CHUNK * 2 + 123)
    await store.put(key, data, "image/png")
    assert await read_whole(await store.open(key)) == data
    assert await read_whole(await store.open(key, CHUNK - 5, CHUNK + 5)) == data[CHUNK - 5 : CHUNK + 6]
    assert await read_whole(await store.open(key, len(data) - 3)) == data[-3:]


async def test_a_stream_dropped_unread_closes_its_descriptor(tmp_path) -> None:
    store = FileBlobStore(tmp_path, min_free_bytes=0)
    await store.init()
    key = f"{uuid.uuid4()}.png"
    await store.put(key, b"x" * 100, "image/png")
    before = _open_descriptors()
    streams = [await store.open(key) for _ in range(20)]
    assert _open_descriptors() == before + 20
    del streams
    gc.collect()
    assert _open_descriptors() == before
    read = await store.open(key)
    await read_whole(read)
    await read.aclose()  # a second close is harmless
    assert _open_descriptors() == before

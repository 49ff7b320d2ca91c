"""The BlobStore contract, run against every adapter in BLOB_STORE_ADAPTERS."""

import os
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import StorageUnavailable


def new_key() -> str:
    return f"{uuid4()}.png"


async def read_all(stream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_put_then_open_returns_the_bytes(blob_store):
    key, data = new_key(), os.urandom(300_000)
    await blob_store.put(key, data, "image/png")
    assert await read_all(await blob_store.open(key)) == data


async def test_open_a_range(blob_store):
    key, data = new_key(), bytes(range(256)) * 40
    await blob_store.put(key, data, "image/png")
    assert await read_all(await blob_store.open(key, 10, 19)) == data[10:20]
    assert await read_all(await blob_store.open(key, 10000)) == data[10000:]
    assert await read_all(await blob_store.open(key, 0, 10**9)) == data


async def test_missing_blob_opens_as_none(blob_store):
    assert await blob_store.open(new_key()) is None


async def test_put_never_overwrites_another_image(blob_store):
    key = new_key()
    await blob_store.put(key, b"first", "image/png")
    with pytest.raises(StorageUnavailable):
        await blob_store.put(key, b"second", "image/png")
    assert await read_all(await blob_store.open(key)) == b"first"


async def test_delete_removes_and_tolerates_missing(blob_store):
    key = new_key()
    await blob_store.put(key, b"bytes", "image/png")
    await blob_store.delete(key)
    assert await blob_store.open(key) is None
    await blob_store.delete(key)  # already gone: no error


async def test_list_older_than_sees_old_blobs_only(blob_store):
    key = new_key()
    await blob_store.put(key, b"bytes", "image/png")
    future = datetime.now(UTC) + timedelta(minutes=5)
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert key in [k.rsplit("/", 1)[-1] for k in await blob_store.list_older_than(future)]
    assert key not in [k.rsplit("/", 1)[-1] for k in await blob_store.list_older_than(past)]


async def test_init_is_idempotent_and_keeps_blobs(blob_store):
    key = new_key()
    await blob_store.put(key, b"kept", "image/png")
    await blob_store.init()
    assert await read_all(await blob_store.open(key)) == b"kept"


async def test_ping_succeeds_when_reachable(blob_store):
    await blob_store.ping()

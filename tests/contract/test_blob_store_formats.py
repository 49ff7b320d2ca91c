"""The BlobStore contract for images kept in the format they were made in (`{guid}.png`, `.webp`,
`.jpg`), run against every adapter in BLOB_STORE_ADAPTERS."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest


@pytest.mark.parametrize(("extension", "content_type"), [("webp", "image/webp"), ("jpg", "image/jpeg")])
async def test_every_format_is_stored_read_and_seen_by_gc(blob_store, extension, content_type):
    key = f"{uuid4()}.{extension}"
    await blob_store.put(key, b"not really " + extension.encode(), content_type)
    stream = await blob_store.open(key)
    assert b"".join([chunk async for chunk in stream.chunks()]) == b"not really " + extension.encode()
    await stream.aclose()
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert key in [k.rsplit("/", 1)[-1] for k in await blob_store.list_older_than(later)]
    await blob_store.delete(key)
    assert await blob_store.open(key) is None

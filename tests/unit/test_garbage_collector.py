"""gc removes blobs that no row points at, and only those older than the grace period."""

from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.domain.maintenance import GarbageCollector


@pytest.fixture
def collector(repository, blobs):
    return GarbageCollector(repository, blobs)


async def test_gc_removes_orphans_only(cases, collector, blobs):
    live = await cases.generate({"prompt": "live"})
    orphan = f"{uuid4()}.png"
    await blobs.put(orphan, b"left by a crash", "image/png")
    await blobs.put("not-ours.txt", b"foreign", "text/plain")
    removed = await collector.remove_orphans(timedelta(seconds=-1))
    assert removed == [orphan]
    assert live.filename in blobs.blobs and "not-ours.txt" in blobs.blobs


async def test_gc_keeps_orphans_younger_than_grace(collector, blobs):
    orphan = f"{uuid4()}.png"
    await blobs.put(orphan, b"maybe in flight", "image/png")
    assert await collector.remove_orphans(timedelta(hours=1)) == []
    assert orphan in blobs.blobs

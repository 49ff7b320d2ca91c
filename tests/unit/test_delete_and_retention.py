"""Deleting an image (row, bytes, every variant) and retention by gc with a moved clock."""

from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import ImageNotFound, StorageUnavailable
from pixyproxy.domain.maintenance import GarbageCollector
from pixyproxy.domain.variants import VariantMaker, VariantSpec, plan
from tests.support.fakes import ManualClock
from tests.support.use_cases import build_use_cases


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def cases(generator, repository, blobs, clock):
    return build_use_cases(generator, repository, blobs, clock=clock)


async def make_variants(blobs, detail):
    maker = VariantMaker(blobs)
    for spec in (VariantSpec(64, "webp"), VariantSpec(128, "jpeg"), VariantSpec(None, "avif")):
        await maker.find_or_make(detail, *plan(detail, spec))


async def test_delete_removes_the_row_the_bytes_and_every_variant(cases, repository, blobs):
    kept = await cases.generate({"prompt": "kept"})
    gone = await cases.generate({"prompt": "gone"})
    await make_variants(blobs, gone)
    await make_variants(blobs, kept)
    assert sum(key.startswith(str(gone.guid)) for key in blobs.blobs) == 4
    await cases.delete(str(gone.guid))
    assert await repository.get(gone.guid) is None
    assert not [key for key in blobs.blobs if key.startswith(str(gone.guid))]
    assert sum(key.startswith(str(kept.guid)) for key in blobs.blobs) == 4
    with pytest.raises(ImageNotFound):
        await cases.read(gone.guid)
    with pytest.raises(ImageNotFound):
        await cases.delete(gone.guid)
    with pytest.raises(ImageNotFound):
        await cases.delete("not-a-guid")
    assert await cases.repository.existing([kept.guid, gone.guid]) == {kept.guid}


async def test_content_of_an_image_deleted_after_its_row_was_read_is_a_404(cases, blobs):
    detail = await cases.generate({"prompt": "read, then deleted"})
    seen = await cases.read(detail.guid)  # a download has read the row...
    await cases.delete(detail.guid)  # ...and the delete wins the race to the bytes
    with pytest.raises(ImageNotFound):
        await cases.content.open(seen)


async def test_bytes_lost_under_a_live_row_are_still_a_503(cases, blobs):
    detail = await cases.generate({"prompt": "bytes lost"})
    del blobs.blobs[detail.filename]
    with pytest.raises(StorageUnavailable):
        await cases.content.open(detail)


async def test_a_store_that_fails_the_delete_leaves_orphans_for_gc(cases, repository, blobs, clock):
    detail = await cases.generate({"prompt": "store down"})
    blobs.fail_with = StorageUnavailable("S3 is not reachable")
    with pytest.raises(StorageUnavailable) as caught:
        await cases.delete(detail.guid)
    assert "gc" in caught.value.message
    assert await repository.get(detail.guid) is None  # gone for every reader
    blobs.fail_with = None
    removed = await GarbageCollector(repository, blobs).remove_orphans(timedelta(seconds=-1))
    assert removed == [detail.filename] and not blobs.blobs


async def test_gc_sees_variants_of_deleted_images_as_orphans(cases, repository, blobs):
    live = await cases.generate({"prompt": "live"})
    await make_variants(blobs, live)
    orphan_variant = f"{uuid4()}.w256.webp"
    await blobs.put(orphan_variant, b"left behind", "image/webp")
    removed = await GarbageCollector(repository, blobs).remove_orphans(timedelta(seconds=-1))
    assert removed == [orphan_variant]
    assert sum(key.startswith(str(live.guid)) for key in blobs.blobs) == 4


async def test_retention_deletes_old_images_in_batches_with_their_bytes(
    cases, repository, blobs, clock, caplog
):
    old = []
    for i in range(5):
        old.append(await cases.generate({"prompt": f"old {i}"}))
        clock.advance(hours=1)
    await make_variants(blobs, old[0])
    clock.advance(days=29)
    young = await cases.generate({"prompt": "young"})
    clock.advance(days=1, hours=1)  # the old ones are now 30+ days old, the young one 1 day

    collector = GarbageCollector(repository, blobs, clock=clock)
    caplog.set_level("INFO")
    assert await collector.remove_expired(timedelta(days=30), batch_size=2) == 5
    assert [d.guid for d in (await repository.list_page(100)).items] == [young.guid]
    assert set(blobs.blobs) == {young.filename}
    batches = [r for r in caplog.records if "older than" in r.getMessage()]
    assert [r.getMessage().split()[2] for r in batches] == ["2", "2", "1"]
    assert await collector.remove_expired(timedelta(days=30), batch_size=2) == 0


async def test_retention_keeps_everything_younger_than_the_cutoff(cases, repository, blobs, clock):
    details = [await cases.generate({"prompt": f"p{i}"}) for i in range(3)]
    clock.advance(days=6)
    collector = GarbageCollector(repository, blobs, clock=clock)
    assert await collector.remove_expired(timedelta(days=7)) == 0
    assert len((await repository.list_page(100)).items) == len(details)

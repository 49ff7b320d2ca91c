"""gc finds rows whose bytes are missing and removes them (with any variant kept: a smaller copy cannot
stand in for the original), on every metadata store and every blob store, checked in the stores
themselves. Rows with their bytes, and rows younger than the grace period, stay."""

import logging
from datetime import timedelta

from pixyproxy.domain.maintenance import GarbageCollector
from pixyproxy.domain.variants import VariantMaker, VariantSpec, plan
from tests.contract.test_delete_on_every_store import blobs_in_store, rows_in_store
from tests.support.fakes import ScriptedGenerator, png_bytes
from tests.support.use_cases import build_use_cases


async def test_gc_removes_rows_whose_bytes_are_missing_and_their_variants(
    repository, blob_store, request, caplog
):
    cases = build_use_cases(ScriptedGenerator(png_bytes(300, 200)), repository, blob_store)
    kept = await cases.generate({"prompt": "kept whole"})
    bare = await cases.generate({"prompt": "bytes lost, nothing else"})
    with_variant = await cases.generate({"prompt": "bytes lost, a variant kept"})
    await VariantMaker(blob_store).find_or_make(with_variant, *plan(with_variant, VariantSpec(64, "webp")))
    await blob_store.delete(bare.filename)  # what a guessed outcome used to leave: a row, no bytes
    await blob_store.delete(with_variant.filename)
    assert blobs_in_store(blob_store, with_variant.guid, request) == [f"{with_variant.guid}.w64.webp"]

    collector = GarbageCollector(repository, blob_store)
    assert await collector.remove_rows_without_bytes(timedelta(hours=1)) == []  # too young yet
    assert rows_in_store(repository, bare.guid, request) == 1

    with caplog.at_level(logging.WARNING, logger="pixyproxy.domain.maintenance"):
        removed = await collector.remove_rows_without_bytes(timedelta(seconds=-1), page_size=1)
    assert sorted(removed) == sorted([bare.guid, with_variant.guid])
    assert str(bare.guid) in caplog.text and str(with_variant.guid) in caplog.text
    for gone in (bare, with_variant):
        assert rows_in_store(repository, gone.guid, request) == 0
        assert blobs_in_store(blob_store, gone.guid, request) == []
    assert rows_in_store(repository, kept.guid, request) == 1
    assert blobs_in_store(blob_store, kept.guid, request) == [kept.filename]
    assert (await cases.read(kept.guid)) == kept

    assert await collector.remove_rows_without_bytes(timedelta(seconds=-1)) == []  # nothing left to do
    assert await collector.remove_orphans(timedelta(seconds=-1)) == []

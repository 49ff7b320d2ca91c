"""Deleting an image on every metadata store and every blob store, checked in the store itself (a
query of its own, a look in the folder or the bucket), not through the adapter that deleted it."""

import sqlite3
from datetime import timedelta

import pytest

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.adapters.s3_blob_store import S3BlobStore
from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.domain.errors import ImageNotFound
from pixyproxy.domain.maintenance import GarbageCollector
from pixyproxy.domain.variants import VariantMaker, VariantSpec, plan
from tests.support.fakes import (
    InMemoryBlobStore,
    InMemoryImageRepository,
    ManualClock,
    ScriptedGenerator,
    png_bytes,
)
from tests.support.use_cases import build_use_cases


def rows_in_store(repository, guid, request) -> int:
    if isinstance(repository, SQLImageRepository) and repository.name == "sqlite":
        with sqlite3.connect(repository.db.url.database) as db:
            return db.execute("SELECT COUNT(*) FROM images WHERE guid = ?", (str(guid),)).fetchone()[0]
    if isinstance(repository, SQLImageRepository):
        server = request.getfixturevalue("mysql_server")
        database = request.getfixturevalue("mysql_database")
        rows = server.query(database, "SELECT COUNT(*) FROM images WHERE guid = %(g)s", {"g": str(guid)})
        return rows[0][0]
    assert isinstance(repository, InMemoryImageRepository)
    return sum(d.guid == guid for _, d, _, _ in repository.rows)


def blobs_in_store(store, guid, request) -> list[str]:
    prefix = f"{guid}."
    if isinstance(store, FileBlobStore):
        return sorted(p.name for p in store.root.iterdir() if p.name.startswith(prefix))
    if isinstance(store, S3BlobStore):
        client = request.getfixturevalue("s3_endpoint").client()  # a plain client, not the adapter's
        listed = client.list_objects_v2(Bucket=store.bucket, Prefix=store.object_key(prefix))
        return sorted(item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", []))
    assert isinstance(store, InMemoryBlobStore)
    return sorted(key for key in store.blobs if key.startswith(prefix))


@pytest.fixture
def cases(repository, blob_store):
    return build_use_cases(
        ScriptedGenerator(png_bytes(300, 200)), repository, blob_store, clock=ManualClock()
    )


async def test_delete_leaves_nothing_of_the_image_in_either_store(cases, repository, blob_store, request):
    kept = await cases.generate({"prompt": "kept"})
    gone = await cases.generate({"prompt": "gone"})
    maker = VariantMaker(blob_store)
    for detail in (kept, gone):
        for spec in (VariantSpec(64, "webp"), VariantSpec(None, "jpeg")):
            await maker.find_or_make(detail, *plan(detail, spec))
    assert rows_in_store(repository, gone.guid, request) == 1
    assert len(blobs_in_store(blob_store, gone.guid, request)) == 3

    await cases.delete(gone.guid)

    assert rows_in_store(repository, gone.guid, request) == 0
    assert blobs_in_store(blob_store, gone.guid, request) == []
    assert rows_in_store(repository, kept.guid, request) == 1
    assert blobs_in_store(blob_store, kept.guid, request) == sorted(
        [kept.filename, f"{kept.guid}.w64.webp", f"{kept.guid}.full.jpg"]
    )
    with pytest.raises(ImageNotFound):
        await cases.delete(gone.guid)


async def test_retention_empties_both_stores_of_old_images(repository, blob_store, request):
    clock = ManualClock()
    cases = build_use_cases(ScriptedGenerator(png_bytes(300, 200)), repository, blob_store, clock=clock)
    old = await cases.generate({"prompt": "old"})
    await VariantMaker(blob_store).find_or_make(old, *plan(old, VariantSpec(128, "png")))
    clock.advance(days=10)
    young = await cases.generate({"prompt": "young"})
    clock.advance(days=1)
    collector = GarbageCollector(repository, blob_store, clock=clock)
    assert await collector.remove_expired(timedelta(days=5), batch_size=1) == 1
    assert rows_in_store(repository, old.guid, request) == 0
    assert blobs_in_store(blob_store, old.guid, request) == []
    assert rows_in_store(repository, young.guid, request) == 1
    assert blobs_in_store(blob_store, young.guid, request) == [young.filename]

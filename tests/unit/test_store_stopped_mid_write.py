"""A store stopped while its row is being written (another of n failed, a shutdown) keeps the image's
bytes: the row's COMMIT may already have been sent, and bytes removed under a committed row are an image
listed forever without content. Bytes with no row are orphans `pixyproxy gc` removes."""

import asyncio

from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases


class CommitsThenHangs(InMemoryImageRepository):
    """add() keeps the row, then never answers (its answer lost): `committed` is set at that point."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = asyncio.Event()

    async def add(self, detail, idempotency_key=None, request_hash=None) -> None:
        await super().add(detail, idempotency_key, request_hash)
        self.committed.set()
        await asyncio.Event().wait()


async def test_a_store_cancelled_after_its_commit_leaves_the_row_with_its_bytes():
    repository, blobs = CommitsThenHangs(), InMemoryBlobStore()
    cases = build_use_cases(ScriptedGenerator(), repository, blobs)
    storing = asyncio.create_task(cases.generate({"prompt": "a fox"}))
    await repository.committed.wait()
    storing.cancel()
    await asyncio.gather(storing, return_exceptions=True)
    [(_, detail, _, _)] = repository.rows
    assert detail.filename in blobs.blobs  # the listed image has its bytes
    assert await cases.content.read(detail) == blobs.blobs[detail.filename][0]

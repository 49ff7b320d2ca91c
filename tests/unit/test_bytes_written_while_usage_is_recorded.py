"""POST /image/ and /v1 (n 1): the image's bytes are checked and written while its usage is recorded; its
row comes after both. The recording ends whatever the bytes turn out to be."""

import asyncio

import pytest

from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.usecases.generate import GenerateImage
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases


class SlowUsage(InMemoryImageRepository):
    """record_usage waits for `release`; `recording` is set once it has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.recording, self.release = asyncio.Event(), asyncio.Event()

    async def record_usage(self, entry) -> None:
        self.recording.set()
        await self.release.wait()
        await super().record_usage(entry)


class SeenWriting(InMemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()

    async def put_prepared(self, prepare):
        self.writing.set()
        return await super().put_prepared(prepare)


@pytest.mark.parametrize("route", ["image", "v1"])
async def test_the_bytes_are_written_while_the_usage_is_recorded(route):
    repository, blobs = SlowUsage(), SeenWriting()
    cases = build_use_cases(ScriptedGenerator(), repository, blobs)
    generate: GenerateImage = cases.generate
    if route == "image":
        made = asyncio.create_task(generate({"prompt": "a fox"}))
    else:
        made = asyncio.create_task(generate.many(generate.check({"prompt": "a fox"}), 1))
    await repository.recording.wait()
    await asyncio.wait_for(blobs.writing.wait(), 5)  # the old order: never, until the usage was recorded
    assert repository.rows == []  # the row waits for both
    repository.release.set()
    await made
    assert len(repository.rows) == 1 and len(repository.usage) == 1 and len(blobs.blobs) == 1


async def test_bytes_that_fail_their_check_are_paid_for_all_the_same():
    repository = SlowUsage()
    cases = build_use_cases(ScriptedGenerator(b"not an image at all"), repository, InMemoryBlobStore())
    made = asyncio.create_task(cases.generate({"prompt": "a fox"}))
    await repository.recording.wait()
    repository.release.set()
    with pytest.raises(GeneratorError):
        await made
    assert len(repository.usage) == 1 and repository.rows == []

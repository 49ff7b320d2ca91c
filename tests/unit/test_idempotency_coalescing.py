"""Idempotency-Key races in GenerateImage: one generation per key in a process, whatever the timing.

The interleavings are forced with events, not timing: each test holds a request at a chosen step."""

import asyncio

from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.tasks import started
from tests.support.use_cases import build_use_cases


class StaleReadRepository(InMemoryImageRepository):
    """The first key lookup waits at `hold` after reading; any later lookup reads at once but answers only
    after an image is committed, as a read racing another request's commit does."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.first_lookup = asyncio.Event()  # set when the first lookup has read
        self.hold = asyncio.Event()
        self.committed = asyncio.Event()

    async def get_by_idempotency_key(self, key: str):
        result = await super().get_by_idempotency_key(key)
        self.lookups += 1
        if self.lookups == 1:
            self.first_lookup.set()
            await self.hold.wait()
        else:
            await self.committed.wait()
        return result

    async def add(self, detail, idempotency_key=None, request_hash=None) -> None:
        await super().add(detail, idempotency_key, request_hash)
        self.committed.set()


async def test_a_duplicate_whose_lookup_predates_the_first_commit_still_waits_for_it():
    # The duplicate arrives while the first request is still looking the key up: a lookup of its own would
    # read "no such key" from before the first commit. It must wait for the first, not pay a second time.
    # (create() picks leading or waiting with no await in between: a started() duplicate has picked.)
    generator = ScriptedGenerator()
    repository = StaleReadRepository()
    cases = build_use_cases(generator, repository, InMemoryBlobStore())
    first = asyncio.create_task(cases.generate({"prompt": "once"}, idempotency_key="k"))
    await repository.first_lookup.wait()
    second = await started(lambda: cases.generate({"prompt": "once"}, idempotency_key="k"))
    repository.hold.set()
    assert (await first) == (await second)
    assert len(generator.calls) == 1 and len(repository.rows) == 1


async def test_a_waiting_duplicate_takes_over_when_the_first_request_is_cancelled():
    generator = ScriptedGenerator(hold=True)
    cases = build_use_cases(generator, InMemoryImageRepository(), InMemoryBlobStore())
    first = asyncio.create_task(cases.generate({"prompt": "once"}, idempotency_key="k"))
    await generator.called.wait()  # the first request leads and is generating
    second = await started(lambda: cases.generate({"prompt": "once"}, idempotency_key="k"))
    first.cancel()
    generator.release()  # lets the duplicate's own generation finish once it has taken over
    detail = await second  # not a CancelledError: the duplicate was never cancelled itself
    assert detail.prompt == "once" and len(generator.calls) == 2 and first.cancelled()

"""Idempotency-Key races in ImageService.create: one generation per key in a process, whatever the timing."""

import asyncio

from pixyproxy.domain.service import ImageService
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator


class StaleReadRepository(InMemoryImageRepository):
    """Answers a key lookup late with what it read at the start, as a read racing another's commit does."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self.delays = delays

    async def get_by_idempotency_key(self, key: str):
        result = await super().get_by_idempotency_key(key)
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0)
        return result


async def test_a_duplicate_whose_lookup_predates_the_first_commit_still_waits_for_it():
    # The first request looks up at once, generates and stores; the duplicate's lookup started before that
    # commit and answers "no such key" after it. It must not pay for a second generation.
    generator = ScriptedGenerator(delay=0.02)
    repository = StaleReadRepository(delays=[0.0, 0.1])
    service = ImageService(generator, repository, InMemoryBlobStore())
    first = asyncio.create_task(service.create({"prompt": "once"}, idempotency_key="k"))
    await asyncio.sleep(0)  # the first request is under way
    second = await service.create({"prompt": "once"}, idempotency_key="k")
    assert (await first) == second
    assert len(generator.calls) == 1 and len(repository.rows) == 1


async def test_a_waiting_duplicate_takes_over_when_the_first_request_is_cancelled():
    generator = ScriptedGenerator(delay=0.05)
    service = ImageService(generator, InMemoryImageRepository(), InMemoryBlobStore())
    first = asyncio.create_task(service.create({"prompt": "once"}, idempotency_key="k"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(service.create({"prompt": "once"}, idempotency_key="k"))
    await asyncio.sleep(0.01)
    first.cancel()
    detail = await second  # not a CancelledError: the duplicate was never cancelled itself
    assert detail.prompt == "once" and len(generator.calls) == 2 and first.cancelled()

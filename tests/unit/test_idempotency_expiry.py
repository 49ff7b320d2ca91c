"""Idempotency-Key expiry: a key returns its first image for `idempotency_ttl_seconds`, then counts as unused.

Time is the cases's injected clock, moved by hand: no sleeps.
"""

import asyncio
from datetime import timedelta

import pytest
from dependency_injector import providers

from pixyproxy.container import Container
from pixyproxy.domain.errors import IdempotencyConflict
from pixyproxy.settings import Settings
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ManualClock, ScriptedGenerator
from tests.support.tasks import started
from tests.support.use_cases import build_use_cases

TTL = 3600


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def cases(generator, repository, blobs, clock):
    return build_use_cases(generator, repository, blobs, idempotency_ttl_seconds=TTL, clock=clock)


async def test_a_replay_within_the_window_returns_the_first_image_with_one_generator_call(
    cases, generator, clock
):
    first = await cases.generate({"prompt": "once"}, idempotency_key="k")
    clock.advance(seconds=TTL)  # exactly the window: not older than it yet
    again = await cases.generate({"prompt": "once"}, idempotency_key="k")
    assert again == first and len(generator.calls) == 1


async def test_after_the_window_the_key_generates_a_new_image_that_takes_the_key(
    cases, generator, repository, clock
):
    first = await cases.generate({"prompt": "once"}, idempotency_key="k")
    clock.advance(seconds=TTL, microseconds=1)
    second = await cases.generate({"prompt": "once"}, idempotency_key="k")
    assert second.guid != first.guid and second.created_at == clock.now
    assert len(generator.calls) == 2
    # The new image holds the key now: replays within its own window return it, with no new call.
    clock.advance(seconds=TTL - 1)
    assert await cases.generate({"prompt": "once"}, idempotency_key="k") == second
    assert len(generator.calls) == 2
    # The first image itself is still there, only without its key.
    assert await cases.read(first.guid) == first
    assert (await repository.get_by_idempotency_key("k")).detail == second


async def test_a_different_body_conflicts_within_the_window_but_not_after_it(cases, generator, clock):
    await cases.generate({"prompt": "once"}, idempotency_key="k")
    clock.advance(seconds=TTL - 1)
    with pytest.raises(IdempotencyConflict):
        await cases.generate({"prompt": "something else"}, idempotency_key="k")
    clock.advance(seconds=2)
    detail = await cases.generate({"prompt": "something else"}, idempotency_key="k")
    assert detail.prompt == "something else" and len(generator.calls) == 2
    # ...and from now on the key belongs to the new body.
    with pytest.raises(IdempotencyConflict):
        await cases.generate({"prompt": "once"}, idempotency_key="k")


async def test_the_default_window_is_24_hours(generator, repository, blobs, clock):
    cases = build_use_cases(generator, repository, blobs, clock=clock)
    first = await cases.generate({"prompt": "once"}, idempotency_key="k")
    clock.advance(hours=24)
    assert await cases.generate({"prompt": "once"}, idempotency_key="k") == first
    clock.advance(microseconds=1)
    assert (await cases.generate({"prompt": "once"}, idempotency_key="k")).guid != first.guid
    assert len(generator.calls) == 2


async def test_concurrent_duplicates_after_the_window_share_one_new_generation(clock):
    generator = ScriptedGenerator()
    repository = InMemoryImageRepository()
    cases = build_use_cases(
        generator, repository, InMemoryBlobStore(), idempotency_ttl_seconds=TTL, clock=clock
    )
    first = await cases.generate({"prompt": "dup"}, idempotency_key="k")
    clock.advance(seconds=TTL + 1)
    generator.hold = True
    generator.called.clear()  # set by the first image's generation

    def create():
        return cases.generate({"prompt": "dup"}, idempotency_key="k")

    leader = asyncio.create_task(create())
    await generator.called.wait()  # the key was found expired and the new generation is under way
    duplicates = [await started(create) for _ in range(4)]
    generator.release()
    results = await asyncio.gather(leader, *duplicates)
    assert len({r.guid for r in results}) == 1 and results[0].guid != first.guid
    assert len(generator.calls) == 2 and len(repository.rows) == 2


class RacingRepository(InMemoryImageRepository):
    """Runs `before_release` once, just before the first release: another process acting in between."""

    def __init__(self) -> None:
        super().__init__()
        self.before_release = None

    async def release_idempotency_key(self, key, older_than):
        hook, self.before_release = self.before_release, None
        if hook is not None:
            await hook()
        await super().release_idempotency_key(key, older_than)


@pytest.mark.parametrize(("prompt", "conflict"), [("once", False), ("other", True)])
async def test_a_fresh_image_another_process_stored_under_the_expired_key_keeps_it(clock, prompt, conflict):
    # Two processes (two services, one database) both find the key expired. The other process releases
    # it and stores its new image first; our release must leave that fresh image its key, and we answer
    # as a replay of it (or 409 for a different body), through the cross-process conflict path.
    repository, blobs = RacingRepository(), InMemoryBlobStore()
    ours = build_use_cases(ScriptedGenerator(), repository, blobs, idempotency_ttl_seconds=TTL, clock=clock)
    theirs = build_use_cases(ScriptedGenerator(), repository, blobs, idempotency_ttl_seconds=TTL, clock=clock)
    old = await theirs.generate({"prompt": "once"}, idempotency_key="k")
    clock.advance(seconds=TTL + 1)
    stored_by_them = []

    async def other_process():
        stored_by_them.append(await theirs.generate({"prompt": "once"}, idempotency_key="k"))

    repository.before_release = other_process
    if conflict:
        with pytest.raises(IdempotencyConflict):
            await ours.generate({"prompt": prompt}, idempotency_key="k")
    else:
        assert await ours.generate({"prompt": prompt}, idempotency_key="k") == stored_by_them[0]
    assert stored_by_them[0].guid != old.guid
    assert (await repository.get_by_idempotency_key("k")).detail == stored_by_them[0]
    assert len(ours.generator.calls) == 1  # we did generate, but our image lost the race...
    assert len(repository.rows) == 2 and len(blobs.blobs) == 2  # ...and its bytes were removed


def test_the_container_passes_the_configured_window_to_the_service(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    assert Settings().idempotency_ttl_seconds == 86_400
    monkeypatch.setenv("PIXYPROXY_IDEMPOTENCY_TTL_SECONDS", "90")
    container = Container()
    container.settings.override(providers.Object(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")))
    assert container.idempotency().ttl == timedelta(seconds=90)

"""A deployment at its max_concurrency is passed over, without waiting, for the next deployment of the
model (in weight order), then for the fallbacks; only when every one is full does a request wait, and
then the first to free a slot serves it. Ordered with events: each provider call answers when told."""

import asyncio

import pytest

from pixyproxy.adapters.deployment_slots import Slots, first_free
from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns
from pixyproxy.domain.catalogue import ModelEntry
from tests.support.routing import REQUEST, Gated, gated_routing, settle


def entries() -> list[ModelEntry]:
    return [
        ModelEntry(name="m", provider="gated", weight=3, max_concurrency=1, fallbacks=["f"]),
        ModelEntry(name="m", provider="gated", weight=1, max_concurrency=1),
        ModelEntry(name="f", provider="gated", max_concurrency=1),
    ]


@pytest.fixture
def providers() -> tuple[Gated, Gated, Gated]:
    return Gated("a"), Gated("b"), Gated("f")


async def test_a_full_deployment_spills_over_to_the_next_then_to_the_fallback(providers):
    a, b, f = providers
    routing = gated_routing(entries(), list(providers))
    first = asyncio.create_task(routing.generate(REQUEST))
    on_a = await a.started.get()  # the heavier deployment first
    second = asyncio.create_task(routing.generate(REQUEST))
    on_b = await b.started.get()  # a is full: the next deployment of the model, not a wait
    third = asyncio.create_task(routing.generate(REQUEST))
    on_f = await f.started.get()  # both full: the fallback
    assert (a.calls, b.calls, f.calls) == (1, 1, 1)
    for call in (on_a, on_b, on_f):
        call.answer()
    made = [await task for task in (first, second, third)]
    assert [(image.deployment, image.attempts) for image in made] == [("m#1", 1), ("m#2", 1), ("f#1", 1)]


async def test_only_when_everything_is_full_does_a_request_wait_for_the_first_to_free(providers):
    a, b, f = providers
    routing = gated_routing(entries(), list(providers))
    tasks = [asyncio.create_task(routing.generate(REQUEST)) for _ in range(3)]
    on_a, on_b, on_f = [await p.started.get() for p in providers]
    waiting = asyncio.create_task(routing.generate(REQUEST))
    await settle()
    assert (a.calls, b.calls, f.calls) == (1, 1, 1) and not waiting.done()  # waiting, calling nobody
    on_f.answer()  # the fallback frees first: the waiting request goes there
    second_on_f = await f.started.get()
    assert (a.calls, b.calls, f.calls) == (1, 1, 2)
    second_on_f.answer()
    assert (await waiting).deployment == "f#1"
    for call in (on_a, on_b):
        call.answer()
    await asyncio.gather(*tasks)


async def test_a_waiting_request_whose_deployment_fails_over_waits_for_the_others(providers):
    a, b, f = providers
    routing = gated_routing(entries(), list(providers))
    tasks = [asyncio.create_task(routing.generate(REQUEST)) for _ in range(3)]
    on_a, on_b, on_f = [await p.started.get() for p in providers]
    waiting = asyncio.create_task(routing.generate(REQUEST))
    await settle()
    on_b.answer()
    (await b.started.get()).fail_over()  # the freed deployment fails: the request waits on a and f
    await settle()
    assert not waiting.done() and (a.calls, f.calls) == (1, 1)
    on_a.answer()
    (await a.started.get()).answer()
    image = await waiting
    assert (image.deployment, image.attempts) == ("m#1", 2)
    on_f.answer()
    await asyncio.gather(*tasks)


async def test_a_waiting_request_that_is_cancelled_takes_no_slot(providers):
    a, b, f = providers
    routing = gated_routing(entries(), list(providers))
    tasks = [asyncio.create_task(routing.generate(REQUEST)) for _ in range(3)]
    calls = [await p.started.get() for p in providers]
    waiting = asyncio.create_task(routing.generate(REQUEST))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for call in calls:
        call.answer()
    await asyncio.gather(*tasks)
    assert [route.limit.taken for route in routing.all_routes()] == [0, 0, 0]
    assert (a.calls, b.calls, f.calls) == (1, 1, 1)


async def test_a_slot_handed_to_a_request_cancelled_in_that_instant_goes_on_to_the_next():
    slots = Slots(1)
    assert slots.try_take() and not slots.try_take()
    first = asyncio.create_task(first_free([slots]))
    second = asyncio.create_task(first_free([slots]))
    await settle()
    slots.give_back()  # handed to `first`, which is cancelled before it runs
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is slots and slots.taken == 1
    slots.give_back()
    assert slots.taken == 0 and slots.try_take()


async def test_a_slot_freed_by_a_call_that_failed_over_is_passed_over_while_it_rests(providers):
    """Its deployment rests now: the waiting request does not spend a call on it, it waits for another."""
    a, b, f = providers
    routing = gated_routing(entries(), list(providers))
    tasks = [asyncio.create_task(routing.generate(REQUEST)) for _ in range(3)]
    on_a, on_b, on_f = [await p.started.get() for p in providers]
    waiting = asyncio.create_task(routing.generate(REQUEST))
    await settle()
    on_a.fail_over()  # m#1 rests; its request goes on to wait for b or f, as ours does
    await settle()
    assert a.calls == 1 and not waiting.done()
    on_f.answer()  # f's slot goes to one waiting request, then, when it is answered, to the other
    (await f.started.get()).answer()
    (await f.started.get()).answer()
    on_b.answer()
    images = [await waiting, *[await task for task in tasks]]
    assert (a.calls, b.calls) == (1, 1)
    assert sorted(image.deployment for image in images) == ["f#1", "f#1", "f#1", "m#2"]
    assert [route.limit.taken for route in routing.all_routes()] == [0, 0, 0]


async def test_a_request_cancelled_while_it_asks_whether_its_freed_deployment_rests_keeps_no_slot(providers):
    """The cooldowns store answers only when told: the request is cancelled while it asks."""
    asked, answer = asyncio.Event(), asyncio.Event()

    class SlowCooldowns(MemoryCooldowns):
        async def cooling(self, keys):
            if len(keys) == 1:  # the question asked when a slot is handed over
                asked.set()
                await answer.wait()
            return await super().cooling(keys)

    routing = gated_routing(entries(), list(providers), SlowCooldowns())
    tasks = [asyncio.create_task(routing.generate(REQUEST)) for _ in range(3)]
    on_a, on_b, on_f = [await p.started.get() for p in providers]
    waiting = asyncio.create_task(routing.generate(REQUEST))
    await settle()
    on_a.answer()  # its slot goes to the waiting request, which asks whether m#1 rests...
    await asked.wait()
    waiting.cancel()  # ...and goes away meanwhile
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for call in (on_b, on_f):
        call.answer()
    await asyncio.gather(*tasks)
    assert [route.limit.taken for route in routing.all_routes()] == [0, 0, 0]

"""Tenancy, usage and budgets in the domain: each key sees its own images, the provider is never called
over budget, usage adds up what the provider reported, and one Idempotency-Key makes one provider call
across services sharing a lock store (replicas)."""

import asyncio
from datetime import timedelta

import pytest
from limits.aio.storage import MemoryStorage

from pixyproxy.adapters.limits_counters import LimitsRateLimiter, LimitsUsageCounter
from pixyproxy.domain.errors import BudgetExceeded, IdempotencyConflict, ImageNotFound, InvalidImageRequest
from pixyproxy.domain.models import Caller
from pixyproxy.domain.usage import DEFAULT_PRICES, Budget, Price, estimate_cost, tokens_of
from pixyproxy.domain.usecases.budgets import Budgets
from tests.support.fakes import InMemoryLocks, ManualClock, ScriptedGenerator
from tests.support.use_cases import UseCases, build_use_cases

ANN, BOB, ADMIN = Caller("ann"), Caller("bob"), Caller("root", "admin")
USAGE = {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}


def build(generator, repository, blobs, clock=None, **options) -> UseCases:
    clock = clock or ManualClock()
    return build_use_cases(generator, repository, blobs, clock=clock, **options)


async def test_a_user_key_sees_only_its_own_images_and_an_admin_sees_all(generator, repository, blobs):
    cases = build(generator, repository, blobs)
    ann_image = await cases.generate({"prompt": "ann's fox"}, caller=ANN)
    bob_image = await cases.generate({"prompt": "bob's owl"}, caller=BOB)
    assert (ann_image.owner, bob_image.owner) == ("ann", "bob")

    assert (await cases.read(ann_image.guid, ANN)).guid == ann_image.guid
    with pytest.raises(ImageNotFound):  # not 403: the guid says nothing
        await cases.read(ann_image.guid, BOB)
    assert (await cases.read(bob_image.guid, ADMIN)).guid == bob_image.guid
    assert (await cases.read(bob_image.guid, None)).guid == bob_image.guid  # keys off: all open

    assert [d.guid for d in (await cases.list_images(caller=ANN))[0]] == [ann_image.guid]
    assert {d.guid for d in (await cases.list_images(caller=ADMIN))[0]} == {
        ann_image.guid,
        bob_image.guid,
    }


async def test_an_edit_of_another_keys_image_is_a_404_and_its_mask_a_422(generator, repository, blobs):
    cases = build(generator, repository, blobs)
    ann_image = await cases.generate({"prompt": "ann's fox"}, caller=ANN)
    bob_image = await cases.generate({"prompt": "bob's owl"}, caller=BOB)
    calls = len(generator.calls)
    with pytest.raises(ImageNotFound):
        await cases.edit(ann_image.guid, {"prompt": "make it blue"}, caller=BOB)
    with pytest.raises(InvalidImageRequest, match="mask_guid"):
        await cases.edit(bob_image.guid, {"prompt": "x", "mask_guid": str(ann_image.guid)}, caller=BOB)
    assert len(generator.calls) == calls  # nothing reached the provider
    edited = await cases.edit(ann_image.guid, {"prompt": "make it blue"}, caller=ADMIN)
    assert edited.owner == "root" and edited.parent_guid == ann_image.guid


async def test_one_idempotency_key_of_two_tenants_is_two_requests(generator, repository, blobs):
    cases = build(generator, repository, blobs)
    first = await cases.generate({"prompt": "a fox"}, ANN, "shared-key")
    second = await cases.generate({"prompt": "a fox"}, BOB, "shared-key")
    assert first.guid != second.guid and second.owner == "bob"
    assert (await cases.generate({"prompt": "a fox"}, ANN, "shared-key")).guid == first.guid
    with pytest.raises(IdempotencyConflict):
        await cases.generate({"prompt": "an owl"}, BOB, "shared-key")
    assert len(generator.calls) == 2


async def test_the_image_budget_refuses_before_the_provider_and_starts_again_at_midnight(
    generator, repository, blobs
):
    clock = ManualClock()
    budgets = Budgets(LimitsUsageCounter(MemoryStorage()), Budget(images_per_day=2), clock=clock)
    cases = build(generator, repository, blobs, clock, budgets=budgets)
    for _ in range(2):
        await cases.generate({"prompt": "a fox"}, caller=ANN)
    with pytest.raises(BudgetExceeded) as refused:
        await cases.generate({"prompt": "a fox"}, caller=ANN)
    assert len(generator.calls) == 2
    assert refused.value.reset_at.isoformat() == "2026-11-25T00:00:00+00:00"
    assert refused.value.retry_after == 12 * 3600  # the clock stands at 12:00 UTC
    assert "2026-11-25T00:00:00Z" in refused.value.message
    await cases.generate({"prompt": "a fox"}, caller=BOB)  # another key has its own budget
    clock.advance(hours=12)
    await cases.generate({"prompt": "a fox"}, caller=ANN)
    assert len(generator.calls) == 4


async def test_a_failed_generation_gives_its_image_back_to_the_budget(generator, repository, blobs):
    budgets = Budgets(LimitsUsageCounter(MemoryStorage()), Budget(images_per_day=1), clock=ManualClock())
    cases = build(generator, repository, blobs, budgets=budgets)
    generator.fail_with = RuntimeError("provider down")
    with pytest.raises(RuntimeError):
        await cases.generate({"prompt": "a fox"}, caller=ANN)
    generator.fail_with = None
    await cases.generate({"prompt": "a fox"}, caller=ANN)
    with pytest.raises(BudgetExceeded):
        await cases.generate({"prompt": "a fox"}, caller=ANN)


async def test_the_token_budget_counts_what_the_provider_reported(generator, repository, blobs):
    generator.usage = USAGE  # 4210 tokens a generation
    budgets = Budgets(
        LimitsUsageCounter(MemoryStorage()),
        per_key={"ann": Budget(tokens_per_day=5000)},
        clock=ManualClock(),
    )
    cases = build(generator, repository, blobs, budgets=budgets)
    await cases.generate({"prompt": "a fox"}, caller=ANN)  # 4210 used, under 5000
    await cases.generate({"prompt": "a fox"}, caller=ANN)  # 8420: the last one of the day goes past
    with pytest.raises(BudgetExceeded, match="5000 tokens"):
        await cases.generate({"prompt": "a fox"}, caller=ANN)
    for _ in range(3):  # no per-key entry and no default: bob is unlimited
        await cases.generate({"prompt": "a fox"}, caller=BOB)
    assert len(generator.calls) == 5


async def test_usage_totals_are_the_reported_tokens_and_their_estimated_cost(generator, repository, blobs):
    generator.usage = USAGE
    prices = {**DEFAULT_PRICES, "scripted-1": Price(input_per_million=5, output_per_million=40)}
    clock = ManualClock()
    cases = build(generator, repository, blobs, clock, prices=prices)
    made = [await cases.generate({"prompt": "a fox"}, caller=ANN) for _ in range(2)]
    source = made[0]
    await cases.edit(source.guid, {"prompt": "blue"}, caller=ANN)
    await cases.generate({"prompt": "an owl"}, caller=BOB)
    one = 50 * 5 / 1e6 + 4160 * 40 / 1e6
    assert made[0].estimated_cost_usd == pytest.approx(one)

    since, until = clock() - timedelta(hours=1), clock() + timedelta(hours=1)
    mine = await cases.report_usage(since, until, ANN)
    assert [t.key for t in mine.keys] == ["ann"]
    assert (mine.keys[0].images, mine.keys[0].input_tokens, mine.keys[0].output_tokens) == (3, 150, 12480)
    assert mine.keys[0].total_tokens == 3 * 4210
    assert mine.keys[0].estimated_cost_usd == pytest.approx(3 * one)
    everyone = await cases.report_usage(since, until, ADMIN)
    assert [(t.key, t.images) for t in everyone.keys] == [("ann", 3), ("bob", 1)]
    assert (await cases.report_usage(until, until + timedelta(days=1), BOB)).keys[0].images == 0


def test_tokens_and_cost_from_every_usage_shape():
    assert tokens_of(None) == (0, 0)
    assert tokens_of({"prompt_tokens": 3, "completion_tokens": 4}) == (3, 4)
    assert tokens_of({"input_tokens": 10, "total_tokens": 25}) == (10, 15)
    assert tokens_of({"input_tokens": "many", "output_tokens": -1}) == (0, 0)
    assert estimate_cost("unpriced", USAGE, DEFAULT_PRICES) is None
    assert estimate_cost("unpriced", None, {"*": Price(per_image=0.04)}) == 0.04


async def test_one_idempotency_key_on_two_replicas_makes_one_provider_call(repository, blobs):
    """Two services (replicas) share the metadata store and a lock store: while the first is at the
    provider, the second's request with the same key waits and replays the first's image."""
    locks = InMemoryLocks()
    first_generator, second_generator = ScriptedGenerator(hold=True), ScriptedGenerator()
    first = build(first_generator, repository, blobs, locks=locks)
    second = build(second_generator, repository, blobs, locks=locks)
    leading = asyncio.create_task(first.generate({"prompt": "a fox"}, ANN, "one-key"))
    await first_generator.called.wait()
    following = asyncio.create_task(second.generate({"prompt": "a fox"}, ANN, "one-key"))
    await locks.refused.wait()  # the second replica found the key taken and waits for it
    first_generator.release()
    assert (await leading).guid == (await following).guid
    assert len(first_generator.calls) + len(second_generator.calls) == 1
    assert not locks.held


async def test_after_a_failed_holder_another_replica_takes_its_turn(repository, blobs):
    locks = InMemoryLocks()
    failing, working = ScriptedGenerator(hold=True), ScriptedGenerator()
    failing.fail_with = RuntimeError("provider down")
    first = build(failing, repository, blobs, locks=locks)
    second = build(working, repository, blobs, locks=locks)
    leading = asyncio.create_task(first.generate({"prompt": "a fox"}, ANN, "one-key"))
    await failing.called.wait()
    following = asyncio.create_task(second.generate({"prompt": "a fox"}, ANN, "one-key"))
    await locks.refused.wait()
    failing.release()
    with pytest.raises(RuntimeError):
        await leading
    assert (await following).owner == "ann"
    assert len(working.calls) == 1


async def test_the_rate_limiter_lets_burst_plus_rate_through():
    limiter = LimitsRateLimiter(MemoryStorage(), per_minute=60, burst=3)  # 3 per 3 s window
    results = [await limiter.take("key:ann") for _ in range(5)]
    assert results[:3] == [0.0, 0.0, 0.0]
    assert all(0 < wait <= 3 for wait in results[3:])
    assert await limiter.take("key:bob") == 0.0  # each client its own window
    with pytest.raises(ValueError):
        LimitsRateLimiter(MemoryStorage(), per_minute=0)

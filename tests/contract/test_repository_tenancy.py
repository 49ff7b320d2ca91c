"""Owners and usage on every metadata store (memory, SQLite, MySQL): an image keeps its owner and cost,
a list filtered by owner holds only that owner's images (paged), and usage totals add up per owner over
a half-open period, surviving the deletion of the images."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.search import ImageFilter
from pixyproxy.domain.usage import UsageEntry

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def detail(owner: str | None, minutes: int, cost: float | None = 0.0421) -> ImageDetail:
    guid = uuid4()
    return ImageDetail(
        guid=guid,
        prompt=f"a fox of {owner}",
        filename=f"{guid}.png",
        created_at=T0 + timedelta(minutes=minutes),
        size_bytes=10,
        width=1,
        height=1,
        model="m",
        sha256="0" * 64,
        owner=owner,
        estimated_cost_usd=cost,
    )


async def test_owner_and_cost_are_kept_and_lists_filter_by_owner(repository):
    made = [detail("ann" if i % 3 else "bob", i) for i in range(7)]
    made.append(detail(None, 8, cost=None))
    for d in made:
        await repository.add(d)
    stored = await repository.get(made[1].guid)
    assert (stored.owner, stored.estimated_cost_usd) == ("ann", 0.0421)
    assert (await repository.get(made[-1].guid)).owner is None

    anns = [d.guid for d in sorted(made, key=lambda d: d.created_at, reverse=True) if d.owner == "ann"]
    page = await repository.list_page(3, None, ImageFilter(owner="ann"))
    rest = await repository.list_page(3, page.next, ImageFilter(owner="ann"))
    assert [d.guid for d in page.items + rest.items] == anns and rest.next is None
    assert {d.owner for d in (await repository.list_page(100, None, ImageFilter(owner="bob"))).items} == {
        "bob"
    }
    assert len((await repository.list_page(100)).items) == 8


async def test_usage_totals_per_owner_over_a_period(repository):
    def entry(owner, minutes, spent_in, spent_out, cost):
        return UsageEntry(
            T0 + timedelta(minutes=minutes), owner, "m", "generate", 1, spent_in, spent_out, cost
        )

    for e in (
        entry("ann", 0, 10, 1000, 0.04),
        entry("ann", 5, 20, 2000, 0.08),
        entry("bob", 5, 1, 100, None),  # an unpriced model
        entry(None, 6, 3, 300, 0.01),
        entry("ann", 60, 5, 500, 0.02),  # the period's end is exclusive
        entry("ann", -1, 5, 500, 0.02),  # before it
    ):
        await repository.record_usage(e)
    until = T0 + timedelta(minutes=60)
    totals = await repository.usage_totals(T0, until)
    assert [(t.key, t.images, t.input_tokens, t.output_tokens, t.total_tokens) for t in totals] == [
        (None, 1, 3, 300, 303),
        ("ann", 2, 30, 3000, 3030),
        ("bob", 1, 1, 100, 101),
    ]
    assert [t.estimated_cost_usd for t in totals] == [0.01, 0.12, 0.0]
    (mine,) = await repository.usage_totals(T0, until, "ann")
    assert (mine.key, mine.images) == ("ann", 2)
    assert await repository.usage_totals(T0, until, "nobody") == []

    image = detail("ann", 1)
    await repository.add(image)
    await repository.delete(image.guid)
    assert (await repository.usage_totals(T0, until, "ann"))[0].images == 2  # usage is not the images


async def test_a_lookup_by_guid_for_an_owner_finds_only_that_owners_image(repository):
    """The owner is part of the lookup: another tenant's guid answers as an unknown one does."""
    anns = detail("ann", 1)
    await repository.add(anns)
    assert await repository.get(anns.guid, "ann") == anns
    assert await repository.get(anns.guid, "bob") is None
    assert await repository.get(anns.guid) == anns  # no owner: an admin's lookup

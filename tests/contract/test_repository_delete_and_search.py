"""The ImageRepository contract for deleting, retention and filtered lists, on every adapter."""

import sqlite3
from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.domain.search import ImageFilter, matches, parse_filter
from tests.contract.test_repository_contract import BASE, make_detail
from tests.support.fakes import InMemoryImageRepository

PROMPTS = [
    "A Lighthouse at dusk, watercolour",
    "the lighthouse keeper's cat",
    "Café crème on a rainy morning",
    "cafe racer motorcycle, chrome",
    "a watercolour fox in the snow",
    "snow-covered LIGHTHOUSES",  # a different word than lighthouse: no stemming
    "NOT NEAR OR AND: operators are words",
]


async def seed(repository, count_per_prompt: int = 1):
    details = []
    for _ in range(count_per_prompt):
        for i, prompt in enumerate(PROMPTS):
            model = "model-a" if i % 2 == 0 else "model-b"
            at = BASE + timedelta(minutes=len(details))
            details.append(make_detail(prompt=prompt, created_at=at, model=model))
    for detail in details:
        await repository.add(detail)
    return details


async def everything(repository, filters: ImageFilter, limit: int = 2):
    seen, after = [], None
    while True:
        page = await repository.list_page(limit, after, filters)
        seen += page.items
        if page.next is None:
            return seen
        after = page.next


def prompts(details) -> list[str]:
    return [d.prompt for d in details]


async def test_delete_removes_the_row_and_reports_whether_it_was_there(repository):
    kept, gone = make_detail(), make_detail()
    await repository.add(kept)
    await repository.add(gone)
    assert await repository.delete(gone.guid) is True
    assert await repository.get(gone.guid) is None
    assert await repository.existing([kept.guid, gone.guid]) == {kept.guid}
    assert [d.guid for d in (await repository.list_page(10)).items] == [kept.guid]
    assert await repository.delete(gone.guid) is False
    assert await repository.delete(uuid4()) is False
    assert await repository.get(kept.guid) == kept


async def test_a_deleted_image_is_not_found_by_search(repository):
    detail = make_detail(prompt="a unique zeppelin")
    await repository.add(detail)
    words = parse_filter(q="zeppelin")
    assert prompts(await everything(repository, words)) == ["a unique zeppelin"]
    await repository.delete(detail.guid)
    assert await everything(repository, words) == []


async def test_created_before_is_oldest_first_and_limited(repository):
    details = [make_detail(created_at=BASE + timedelta(days=i)) for i in range(5)]
    for detail in reversed(details):
        await repository.add(detail)
    old = await repository.created_before(BASE + timedelta(days=3), limit=2)
    assert [d.guid for d in old] == [details[0].guid, details[1].guid]
    old = await repository.created_before(BASE + timedelta(days=3), limit=10)
    assert [d.guid for d in old] == [d.guid for d in details[:3]]
    assert await repository.created_before(BASE, limit=10) == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("lighthouse", ["the lighthouse keeper's cat", "A Lighthouse at dusk, watercolour"]),
        ("LIGHTHOUSE dusk", ["A Lighthouse at dusk, watercolour"]),
        ("watercolour", ["a watercolour fox in the snow", "A Lighthouse at dusk, watercolour"]),
        ("cafe", ["cafe racer motorcycle, chrome", "Café crème on a rainy morning"]),
        ("café crème", ["Café crème on a rainy morning"]),
        ("snow", ["snow-covered LIGHTHOUSES", "a watercolour fox in the snow"]),
        ("the snow", ["a watercolour fox in the snow"]),  # stopwords are words too
        ("not near", ["NOT NEAR OR AND: operators are words"]),
        ('"fox" -snow', ["a watercolour fox in the snow"]),  # quotes and minus signs are not operators
        ("zebra", []),
        ("lighthouse zebra", []),
    ],
)
async def test_q_finds_every_word_in_any_case_and_accent(repository, q, expected):
    await seed(repository)
    assert prompts(await everything(repository, parse_filter(q=q))) == expected


async def test_model_and_time_window_combine_with_words_and_paging(repository):
    details = await seed(repository, count_per_prompt=3)  # 24 images, a minute apart
    model_a = await everything(repository, parse_filter(model="model-a"), limit=5)
    assert [d.guid for d in model_a] == [d.guid for d in reversed(details) if d.model == "model-a"]

    after, before = details[3].created_at, details[20].created_at
    window = ImageFilter(created_after=after, created_before=before)
    assert [d.guid for d in await everything(repository, window, limit=4)] == [
        d.guid for d in reversed(details[4:20])
    ]
    combined = ImageFilter(words=("lighthouse",), model="model-a", created_after=after, created_before=before)
    expected = [
        d.guid
        for d in reversed(details[4:20])
        if d.model == "model-a" and "lighthouse" in d.prompt.lower().split()
    ]
    assert len(expected) == 2
    assert [d.guid for d in await everything(repository, combined, limit=1)] == expected


async def test_filtered_paging_through_equal_timestamps_loses_nothing(repository):
    same = [make_detail(prompt=f"harbour scene {i}", created_at=BASE) for i in range(5)]
    others = [make_detail(prompt="mountain", created_at=BASE) for _ in range(3)]
    for detail in [*same, *others]:
        await repository.add(detail)
    seen = await everything(repository, parse_filter(q="harbour"), limit=2)
    assert [d.guid for d in seen] == [d.guid for d in reversed(same)]


async def test_an_empty_filter_is_the_plain_list(repository):
    details = await seed(repository)
    page = await repository.list_page(100, None, ImageFilter())
    assert [d.guid for d in page.items] == [d.guid for d in reversed(details)]


@pytest.mark.parametrize("lead", [0, 1, 2])
async def test_search_answers_the_same_whichever_word_leads(repository, monkeypatch, lead):
    """SQL stores read the rarest word's postings and look the others up: forcing each word to lead
    must not change a page (the in-memory store ignores the setting)."""
    await seed(repository, count_per_prompt=3)
    words = ("lighthouse dusk watercolour", "the snow fox", "cafe chrome racer")
    queries = [parse_filter(q=q) for q in words]
    queries.append(ImageFilter(words=("watercolour", "lighthouse", "dusk"), model="model-a"))
    expected = [[d.guid for d in await everything(repository, f, limit=2)] for f in queries]

    def forced(words, reach):
        return (words[lead], *words[:lead], *words[lead + 1 :])

    monkeypatch.setattr("pixyproxy.adapters.sql.word_postings.rarest_first", forced)
    for filters, guids in zip(queries, expected, strict=True):
        for limit in (1, 2, 4):
            assert [d.guid for d in await everything(repository, filters, limit)] == guids
    assert [len(guids) for guids in expected] == [3, 3, 3, 3]


@pytest.mark.parametrize("lead", ["word", "model", "owner"])
async def test_search_answers_the_same_whether_a_word_the_model_or_the_owner_leads(
    repository, monkeypatch, lead
):
    """SQL stores may read one tenant's (or one model's) images off that column's index and look every
    word up: forcing each way to lead must not change a page."""
    details = []
    for i in range(24):
        at = BASE + timedelta(minutes=i)
        model, owner = ("model-a", "ann") if i % 3 == 0 else ("model-b", "bob")
        detail = make_detail(prompt=PROMPTS[i % len(PROMPTS)], created_at=at, model=model, owner=owner)
        details.append(detail)
        await repository.add(detail)
    queries = [
        ImageFilter(words=("lighthouse",), model="model-a", owner="ann"),
        ImageFilter(words=("snow", "watercolour"), model="model-b", owner="bob"),
        ImageFilter(words=("cafe",), owner="bob", created_after=BASE + timedelta(minutes=2)),
        ImageFilter(
            words=("lighthouse", "the"), model="model-a", created_before=BASE + timedelta(minutes=20)
        ),
    ]
    expected = [[d.guid for d in reversed(details) if meets(d, f)] for f in queries]
    assert all(expected), expected
    monkeypatch.setattr(
        "pixyproxy.adapters.sql.word_postings.plan",
        lambda words, filters, reach: (lead if getattr(filters, lead, None) else "word", words),
    )
    for filters, guids in zip(queries, expected, strict=True):
        for limit in (1, 2, 5):
            assert [d.guid for d in await everything(repository, filters, limit)] == guids


def meets(detail, f: ImageFilter) -> bool:
    """The reference meaning of a filter (domain/search.py), spelled out for the tests."""
    return (
        matches(detail.prompt, f.words)
        and f.model in (None, detail.model)
        and f.owner in (None, detail.owner)
        and (f.created_after is None or detail.created_at > f.created_after)
        and (f.created_before is None or detail.created_at < f.created_before)
    )


async def test_a_word_longer_than_any_index_key_is_matched_whole(repository):
    """An index may cut long words (MySQL keeps 100 characters): two words alike for their first 150
    letters are still told apart, and a page skips the look-alikes and stays full."""
    stem = "a" * 150
    wanted = [make_detail(prompt=f"{stem}b here", created_at=BASE + timedelta(minutes=i)) for i in range(3)]
    alike = [
        make_detail(prompt=f"{stem}c there", created_at=BASE + timedelta(minutes=10 + i)) for i in range(3)
    ]
    for detail in [*wanted, *alike]:  # the look-alikes are the newest: a page meets them first
        await repository.add(detail)
    found = await everything(repository, parse_filter(q=f"{stem}b"), limit=2)
    assert [d.guid for d in found] == [d.guid for d in reversed(wanted)]
    page = await repository.list_page(2, None, parse_filter(q=f"{stem}b"))
    assert len(page.items) == 2 and page.next is not None


async def test_reindex_finds_images_stored_without_their_words_and_adds_nothing_twice(repository, request):
    """An older version's process, still running during an upgrade, stores an image's row alone;
    reindex_words() posts its words, and running it again changes nothing."""
    kept = make_detail(prompt="an indexed lighthouse", created_at=BASE)
    await repository.add(kept)
    stray = make_detail(prompt="a stray lighthouse", created_at=BASE + timedelta(minutes=1))
    await repository.add(stray)
    forget_words(repository, stray, request)
    lighthouse = parse_filter(q="lighthouse")
    expected = [stray.guid, kept.guid]
    if not isinstance(repository, InMemoryImageRepository):  # it reads every prompt: nothing to forget
        assert [d.guid for d in await everything(repository, lighthouse)] == [kept.guid]
    assert await repository.reindex_words() == 2
    assert [d.guid for d in await everything(repository, lighthouse)] == expected
    assert await repository.reindex_words() == 2
    assert [d.guid for d in await everything(repository, parse_filter(q="stray lighthouse"))] == [stray.guid]
    assert [d.guid for d in await everything(repository, lighthouse)] == expected


def forget_words(repository, detail, request) -> None:
    """Take an image's postings out behind the adapter's back, as if an older version had stored it."""
    forget = "DELETE FROM image_words WHERE image_id = (SELECT id FROM images WHERE guid = {mark})"
    if isinstance(repository, SQLImageRepository) and repository.name == "sqlite":
        with sqlite3.connect(repository.db.url.database) as db:
            db.execute(forget.format(mark="?"), (str(detail.guid),))
    elif isinstance(repository, SQLImageRepository):
        server = request.getfixturevalue("mysql_server")
        database = request.getfixturevalue("mysql_database")
        server.query(database, forget.format(mark="%(g)s"), {"g": str(detail.guid)})

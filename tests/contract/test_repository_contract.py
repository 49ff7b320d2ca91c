"""The ImageRepository contract, run against every adapter in REPOSITORY_ADAPTERS."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import IdempotencyConflict
from pixyproxy.domain.models import ImageDetail

BASE = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def make_detail(prompt: str = "a cat", created_at: datetime = BASE, **extra) -> ImageDetail:
    guid = uuid4()
    values = dict(
        guid=guid,
        prompt=prompt,
        filename=f"{guid}.png",
        created_at=created_at,
        size_bytes=1234,
        width=512,
        height=256,
        model="test-model",
        sha256="ab" * 32,
    )
    values.update(extra)
    return ImageDetail(**values)


async def test_added_detail_reads_back_identical(repository):
    detail = make_detail(
        size="1024x1024",
        quality="high",
        revised_prompt="a fluffy cat",
        usage={"input_tokens": 12, "output_tokens": 4160, "details": {"text_tokens": 12}},
    )
    await repository.add(detail)
    assert await repository.get(detail.guid) == detail


async def test_unknown_guid_is_none(repository):
    assert await repository.get(uuid4()) is None


@pytest.mark.parametrize(
    "prompt",
    [
        "quotes ' \" and `backticks`",
        "back\\slash \\n not a newline",
        "emoji 🦆🖼️ and CJK 鸭子",
        "'; DROP TABLE images; --",
        "line one\nline two\ttabbed",
        "%(guid)s :guid ? %s {}",
    ],
)
async def test_prompts_round_trip_unchanged(repository, prompt):
    detail = make_detail(prompt=prompt)
    await repository.add(detail)
    assert (await repository.get(detail.guid)).prompt == prompt


async def test_list_is_newest_first_and_pages_by_cursor(repository):
    details = [make_detail(prompt=f"p{i}", created_at=BASE + timedelta(seconds=i)) for i in range(7)]
    for detail in details:
        await repository.add(detail)
    newest_first = list(reversed(details))

    seen = []
    page = await repository.list_page(3)
    seen += page.items
    while page.next is not None:
        page = await repository.list_page(3, page.next)
        seen += page.items
    assert [d.guid for d in seen] == [d.guid for d in newest_first]


async def test_list_pages_through_equal_timestamps_without_loss(repository):
    same_time = [make_detail(prompt=f"t{i}", created_at=BASE) for i in range(5)]
    for detail in same_time:
        await repository.add(detail)
    seen = []
    page = await repository.list_page(2)
    seen += page.items
    while page.next is not None:
        page = await repository.list_page(2, page.next)
        seen += page.items
    assert sorted(str(d.guid) for d in seen) == sorted(str(d.guid) for d in same_time)
    # Among equal timestamps the later insert comes first (id desc).
    assert [d.guid for d in seen] == [d.guid for d in reversed(same_time)]


async def test_last_page_has_no_next(repository):
    for i in range(2):
        await repository.add(make_detail(created_at=BASE + timedelta(seconds=i)))
    page = await repository.list_page(2)
    assert len(page.items) == 2 and page.next is None
    assert (await repository.list_page(5)).next is None


async def test_empty_list(repository):
    page = await repository.list_page(10)
    assert page.items == [] and page.next is None


async def test_idempotency_key_is_found_with_its_request_hash(repository):
    detail = make_detail()
    await repository.add(detail, idempotency_key="key-1", request_hash="hash-1")
    found = await repository.get_by_idempotency_key("key-1")
    assert found is not None and found.detail == detail and found.request_hash == "hash-1"
    assert await repository.get_by_idempotency_key("key-2") is None


async def test_second_image_with_same_idempotency_key_is_a_conflict(repository):
    await repository.add(make_detail(), idempotency_key="key-1", request_hash="h")
    second = make_detail()
    with pytest.raises(IdempotencyConflict):
        await repository.add(second, idempotency_key="key-1", request_hash="h")
    assert await repository.get(second.guid) is None


async def test_release_frees_an_expired_idempotency_key_and_keeps_the_image(repository):
    old = make_detail(created_at=BASE)
    await repository.add(old, idempotency_key="key-1", request_hash="hash-1")
    # The cutoff one microsecond after the image, written in another time zone: still older than it.
    cutoff = (BASE + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=2)))
    await repository.release_idempotency_key("key-1", older_than=cutoff)
    assert await repository.get_by_idempotency_key("key-1") is None
    assert await repository.get(old.guid) == old
    assert [d.guid for d in (await repository.list_page(10)).items] == [old.guid]
    # The key is free: a new image takes it, with its own request hash.
    new = make_detail(created_at=BASE + timedelta(days=1))
    await repository.add(new, idempotency_key="key-1", request_hash="hash-2")
    found = await repository.get_by_idempotency_key("key-1")
    assert found is not None and found.detail == new and found.request_hash == "hash-2"
    assert await repository.get(old.guid) == old


async def test_release_keeps_a_key_that_is_not_older_than_the_cutoff(repository):
    detail = make_detail(created_at=BASE)
    await repository.add(detail, idempotency_key="key-1", request_hash="hash-1")
    await repository.release_idempotency_key("key-1", older_than=BASE)  # same instant: not older
    await repository.release_idempotency_key("key-1", older_than=BASE - timedelta(hours=1))
    found = await repository.get_by_idempotency_key("key-1")
    assert found is not None and found.detail == detail and found.request_hash == "hash-1"
    with pytest.raises(IdempotencyConflict):
        await repository.add(make_detail(), idempotency_key="key-1", request_hash="hash-1")


async def test_release_touches_only_the_named_key(repository):
    first, second = make_detail(), make_detail()
    await repository.add(first, idempotency_key="key-a", request_hash="hash-a")
    await repository.add(second, idempotency_key="key-b", request_hash="hash-b")
    later = BASE + timedelta(days=2)
    await repository.release_idempotency_key("key-a", older_than=later)
    await repository.release_idempotency_key("no-such-key", older_than=later)
    assert await repository.get_by_idempotency_key("key-a") is None
    found = await repository.get_by_idempotency_key("key-b")
    assert found is not None and found.detail == second and found.request_hash == "hash-b"
    assert await repository.existing([first.guid, second.guid]) == {first.guid, second.guid}


async def test_existing_reports_only_stored_guids(repository):
    stored = make_detail()
    await repository.add(stored)
    missing = uuid4()
    assert await repository.existing([stored.guid, missing]) == {stored.guid}
    assert await repository.existing([]) == set()


async def test_ping_succeeds_when_reachable(repository):
    await repository.ping()


async def test_init_is_idempotent_and_keeps_data(repository):
    detail = make_detail()
    await repository.add(detail)
    await repository.init()
    await repository.init()
    assert await repository.get(detail.guid) == detail


async def test_existing_answers_for_more_guids_than_one_statement_takes(repository):
    stored = [make_detail(), make_detail()]
    for detail in stored:
        await repository.add(detail)
    asked = [uuid4() for _ in range(1200)]
    asked[0], asked[-1] = stored[0].guid, stored[1].guid  # in the first and the last chunk
    assert await repository.existing(asked) == {d.guid for d in stored}

"""The image use cases, with in-memory fakes of every port."""

import asyncio
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import (
    GeneratorError,
    IdempotencyConflict,
    ImageNotFound,
    InvalidCursor,
    InvalidImageRequest,
    MetadataUnavailable,
    StorageUnavailable,
)
from pixyproxy.domain.models import GenerationRequest
from tests.support.fakes import png_bytes
from tests.support.tasks import started


async def test_create_stores_bytes_and_row_with_the_prompt_sent(cases, generator, repository, blobs):
    detail = await cases.generate({"prompt": "  a red fox  "})
    assert detail.prompt == "a red fox"
    assert generator.calls[0].prompt == "a red fox"
    assert detail.filename == f"{detail.guid}.png"
    assert (detail.width, detail.height, detail.content_type) == (64, 48, "image/png")
    assert await repository.get(detail.guid) == detail
    assert blobs.blobs[detail.filename][0] == generator.image
    assert detail.size_bytes == len(generator.image)


async def test_non_png_output_is_converted_to_png(cases, generator, blobs):
    generator.image = png_bytes(30, 20, fmt="JPEG")
    detail = await cases.generate({"prompt": "jpeg please"})
    stored = blobs.blobs[detail.filename][0]
    assert stored.startswith(b"\x89PNG\r\n\x1a\n")
    assert (detail.width, detail.height, detail.size_bytes) == (30, 20, len(stored))


@pytest.mark.parametrize("garbage", [b"", b"not an image at all", png_bytes()[:60]])
async def test_garbage_from_the_generator_is_a_generator_error_and_stores_nothing(
    cases, generator, repository, blobs, garbage
):
    generator.image = garbage
    with pytest.raises(GeneratorError):
        await cases.generate({"prompt": "x"})
    assert repository.rows == [] and blobs.blobs == {}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": 42},
        {"prompt": "bell\x07"},
        {"prompt": "nul\x00"},
        {"prompt": "x" * 101},
        {"prompt": "ok", "size": "huge"},
        {"prompt": "ok", "model": "unknown-model"},
    ],
)
async def test_bad_input_is_refused_before_the_generator(cases, generator, repository, body):
    with pytest.raises(InvalidImageRequest):
        await cases.generate(body)
    assert generator.calls == [] and repository.rows == []


async def test_newline_and_tab_are_allowed(cases):
    detail = await cases.generate({"prompt": "line one\n\tline two"})
    assert detail.prompt == "line one\n\tline two"


async def test_generator_failure_stores_nothing(cases, generator, repository, blobs):
    generator.fail_with = GeneratorError("provider exploded")
    with pytest.raises(GeneratorError):
        await cases.generate({"prompt": "x"})
    assert repository.rows == [] and blobs.blobs == {}


async def test_storage_failure_leaves_no_row(cases, repository, blobs):
    blobs.fail_with = StorageUnavailable("down")
    with pytest.raises(StorageUnavailable):
        await cases.generate({"prompt": "x"})
    assert repository.rows == []


async def test_metadata_failure_after_upload_removes_the_blob(cases, repository, blobs):
    repository.fail_with = MetadataUnavailable("down")
    with pytest.raises(MetadataUnavailable):
        await cases.generate({"prompt": "x"})
    assert blobs.blobs == {}


async def test_get_unknown_or_malformed_guid_is_not_found(cases):
    for guid in (str(uuid4()), "not-a-uuid", "../../etc/passwd", "x" * 10_000):
        with pytest.raises(ImageNotFound):
            await cases.read(guid)


async def test_list_pages_newest_first(cases):
    made = [await cases.generate({"prompt": f"p{i}"}) for i in range(5)]
    items, cursor = await cases.list_images(limit=2)
    seen = list(items)
    while cursor:
        items, cursor = await cases.list_images(limit=2, cursor=cursor)
        seen += items
    assert [d.guid for d in seen] == [d.guid for d in reversed(made)]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_list_limit_out_of_range(cases, limit):
    with pytest.raises(InvalidImageRequest):
        await cases.list_images(limit=limit)


@pytest.mark.parametrize("cursor", ["", "garbage!", "Zm9vfGJhcg", "x" * 500])
async def test_list_refuses_a_foreign_cursor(cases, cursor):
    with pytest.raises(InvalidCursor):
        await cases.list_images(cursor=cursor)


async def test_idempotent_replay_returns_the_first_image_without_a_second_call(cases, generator):
    first = await cases.generate({"prompt": "once"}, idempotency_key="k1")
    again = await cases.generate({"prompt": "once"}, idempotency_key="k1")
    assert again == first and len(generator.calls) == 1


async def test_idempotency_key_with_a_different_body_is_a_conflict(cases):
    await cases.generate({"prompt": "once"}, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        await cases.generate({"prompt": "something else"}, idempotency_key="k1")


async def test_concurrent_duplicates_share_one_generation(cases, generator, repository):
    generator.hold = True

    def create():
        return cases.generate({"prompt": "dup"}, idempotency_key="k")

    first = asyncio.create_task(create())
    await generator.called.wait()  # the first leads and is generating
    duplicates = [await started(create) for _ in range(4)]
    generator.release()
    results = await asyncio.gather(first, *duplicates)
    assert len({r.guid for r in results}) == 1
    assert len(generator.calls) == 1 and len(repository.rows) == 1


async def test_concurrent_duplicate_with_other_body_conflicts(cases, generator):
    generator.hold = True
    first = asyncio.create_task(cases.generate({"prompt": "a"}, idempotency_key="k"))
    await generator.called.wait()  # the first is generating under the key
    with pytest.raises(IdempotencyConflict):  # at once: a generation of its own would wait for release()
        await asyncio.wait_for(cases.generate({"prompt": "b"}, idempotency_key="k"), timeout=10)
    generator.release()
    await first


async def test_failed_idempotent_generation_can_be_retried(cases, generator):
    generator.fail_with = GeneratorError("boom")
    with pytest.raises(GeneratorError):
        await cases.generate({"prompt": "retry me"}, idempotency_key="k")
    generator.fail_with = None
    detail = await cases.generate({"prompt": "retry me"}, idempotency_key="k")
    assert detail.prompt == "retry me" and len(generator.calls) == 2


async def test_readiness_reports_each_dependency(cases, repository, blobs):
    assert (await cases.readiness()).ready
    blobs.fail_with = StorageUnavailable("bucket gone")
    readiness = await cases.readiness()
    assert not readiness.ready
    assert readiness.checks == {"metadata": "ok", "storage": "bucket gone", "generator": "ok"}


async def test_row_without_blob_is_storage_unavailable(cases, blobs):
    detail = await cases.generate({"prompt": "x"})
    del blobs.blobs[detail.filename]
    with pytest.raises(StorageUnavailable):
        await cases.content.open(detail)


def test_web_model_and_service_agree_on_prompt_rules():
    with pytest.raises(ValueError):
        GenerationRequest(prompt="\x1b[31m red")
    assert GenerationRequest(prompt=" padded ").prompt == "padded"

"""The edit use case on the embedded default's adapters (offline generator, SQLite, local files): the
source visibly changed by the prompt within the mask, lineage stored, refusals store nothing."""

import io
from datetime import UTC, datetime
from hashlib import sha256
from uuid import uuid4

import pytest
from PIL import Image, ImageChops

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from pixyproxy.domain.errors import IdempotencyConflict, ImageNotFound, InvalidImageRequest
from pixyproxy.domain.models import ImageDetail
from tests.support.sql import make_repository, sqlite_url
from tests.support.use_cases import build_use_cases


@pytest.fixture
async def cases(tmp_path):
    repository, blobs = (
        make_repository(sqlite_url(tmp_path / "db.sqlite")),
        FileBlobStore(tmp_path / "images"),
    )
    await repository.init()
    await blobs.init()
    yield build_use_cases(OfflineImageGenerator(), repository, blobs)
    await repository.close()
    await blobs.close()


async def pixels(cases, detail) -> Image.Image:
    stream = await cases.content.open(detail)
    data = b"".join([chunk async for chunk in stream.chunks()])
    await stream.aclose()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def stored_count(cases, tmp_path) -> tuple[int, int]:
    rows, _ = await cases.list_images(limit=1000)
    return len(rows), len([p for p in (tmp_path / "images").rglob("*") if p.is_file()])


async def stored_mask(cases, size=(128, 96)):
    """A stored PNG whose left half is fully transparent (editable) and right half opaque (kept)."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    data, guid = out.getvalue(), uuid4()
    detail = ImageDetail(
        guid=guid,
        prompt="mask",
        filename=f"{guid}.png",
        created_at=datetime.now(UTC),
        size_bytes=len(data),
        width=size[0],
        height=size[1],
        model="test",
        sha256=sha256(data).hexdigest(),
    )
    await cases.blobs.put(detail.filename, data, "image/png")
    await cases.repository.add(detail)
    return detail


async def test_an_edit_changes_the_source_as_the_prompt_says_and_records_its_lineage(cases):
    source = await cases.generate({"prompt": "a quiet harbour", "size": "128x96"})
    reference = await cases.generate({"prompt": "a red boat", "size": "64x64"})
    edited = await cases.edit(source.guid, {"prompt": "at night", "reference_guids": [str(reference.guid)]})
    assert (edited.parent_guid, edited.reference_guids, edited.mask_guid) == (
        source.guid,
        [reference.guid],
        None,
    )
    assert (edited.width, edited.height) == (128, 96) and edited.prompt == "at night"
    assert await cases.read(edited.guid) == edited
    before, after = (
        (await pixels(cases, source)).convert("RGB"),
        (await pixels(cases, edited)).convert("RGB"),
    )
    diff = ImageChops.difference(before, after).convert("L").point(lambda v: 255 if v > 20 else 0)
    assert diff.histogram()[255] > 0.3 * 128 * 96  # visibly changed, not a copy
    again = await cases.edit(source.guid, {"prompt": "at night", "reference_guids": [str(reference.guid)]})
    assert (await pixels(cases, again)).convert("RGB").tobytes() == after.tobytes()  # deterministic
    other = await cases.edit(source.guid, {"prompt": "in the fog"})
    assert (await pixels(cases, other)).convert("RGB").tobytes() != after.tobytes()


async def test_a_mask_limits_the_edit_and_every_format_and_size_is_honoured(cases):
    source = await cases.generate({"prompt": "a wall", "size": "128x96"})
    mask = await stored_mask(cases)
    edited = await cases.edit(
        source.guid, {"prompt": "graffiti", "mask_guid": str(mask.guid), "output_format": "webp"}
    )
    assert edited.mask_guid == mask.guid and edited.content_type == "image/webp"
    assert edited.filename.endswith(".webp")
    before, after = (
        (await pixels(cases, source)).convert("RGB"),
        (await pixels(cases, edited)).convert("RGB"),
    )
    diff = ImageChops.difference(before, after).convert("L")
    left, right = diff.crop((0, 0, 60, 96)), diff.crop((68, 0, 128, 96))  # either side of the mask's edge
    assert sum(left.histogram()[30:]) > 0.3 * 60 * 96  # the transparent half changed
    assert sum(right.histogram()[30:]) < 0.02 * 60 * 96  # the opaque half did not (webp is lossy: near)
    resized = await cases.edit(source.guid, {"prompt": "bigger", "size": "256x192", "output_format": "jpeg"})
    assert (resized.width, resized.height, resized.content_type) == (256, 192, "image/jpeg")


async def test_refusals_store_nothing(cases, tmp_path):
    source = await cases.generate({"prompt": "a wall", "size": "128x96"})
    small_mask = await cases.generate({"prompt": "small", "size": "64x64"})
    before = await stored_count(cases, tmp_path)
    with pytest.raises(ImageNotFound):
        await cases.edit(uuid4(), {"prompt": "x"})
    with pytest.raises(InvalidImageRequest, match=r"^mask_guid: .*same size"):
        await cases.edit(source.guid, {"prompt": "x", "mask_guid": str(small_mask.guid)})
    with pytest.raises(InvalidImageRequest, match=r"^reference_guids: "):
        await cases.edit(source.guid, {"prompt": "x", "reference_guids": [str(uuid4())]})
    with pytest.raises(InvalidImageRequest, match="reference_guids"):
        await cases.edit(source.guid, {"prompt": "x", "reference_guids": [str(uuid4()) for _ in range(16)]})
    with pytest.raises(InvalidImageRequest, match="/image/jobs"):
        await cases.edit(source.guid, {"prompt": "x", "n": 3})
    with pytest.raises(InvalidImageRequest, match=r"^size: "):
        await cases.edit(source.guid, {"prompt": "x", "size": "4096x4096"})  # past the offline 2048
    assert await stored_count(cases, tmp_path) == before


async def test_the_idempotency_key_rules_apply_to_edits(cases):
    source = await cases.generate({"prompt": "a wall", "size": "64x64"})
    other = await cases.generate({"prompt": "another wall", "size": "64x64"})
    first = await cases.edit(source.guid, {"prompt": "paint"}, idempotency_key="edit-1")
    assert await cases.edit(source.guid, {"prompt": "paint"}, idempotency_key="edit-1") == first
    with pytest.raises(IdempotencyConflict):  # the same body against another image is another request
        await cases.edit(other.guid, {"prompt": "paint"}, idempotency_key="edit-1")
    with pytest.raises(IdempotencyConflict):
        await cases.generate({"prompt": "paint"}, idempotency_key="edit-1")


async def test_a_safety_identifier_is_stored_on_the_image(cases):
    from pixyproxy.domain.models import Caller
    from pixyproxy.domain.usecases.metering import safety_identifier_for

    identifier = safety_identifier_for("key:0123456789abcdef")
    assert identifier.startswith("pixyproxy-") and "0123456789abcdef" not in identifier
    assert safety_identifier_for("key:0123456789abcdef") == identifier  # stable
    made = await cases.generate({"prompt": "x", "size": "32x32"}, Caller("key:0123456789abcdef"))
    assert (await cases.read(made.guid)).safety_identifier == identifier

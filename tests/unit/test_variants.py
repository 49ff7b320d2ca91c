"""Variants in the domain: what a query asks for, which key it is kept under, what render() makes, and
that concurrent first requests make one encode."""

import asyncio
import io
from uuid import uuid4

import pytest
from PIL import Image

from pixyproxy.domain.errors import InvalidImageRequest, StorageUnavailable
from pixyproxy.domain.maintenance import guid_of
from pixyproxy.domain.variants import (
    VARIANT_FORMATS,
    WIDTHS,
    OriginalMissing,
    VariantMaker,
    VariantSpec,
    all_variant_keys,
    negotiate,
    parse_variant,
    plan,
    render,
)
from tests.contract.test_repository_contract import make_detail
from tests.support.fakes import InMemoryBlobStore
from tests.support.tasks import started

PILLOW_FORMAT = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "avif": "AVIF"}


def original(width=1024, height=768, fmt="png"):
    guid = uuid4()
    ext = VARIANT_FORMATS[fmt][1]
    detail = make_detail(guid=guid, filename=f"{guid}.{ext}", width=width, height=height, output_format=fmt)
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format=PILLOW_FORMAT[fmt])
    return detail, out.getvalue()


@pytest.mark.parametrize("width", [*WIDTHS, None])
@pytest.mark.parametrize("fmt", list(VARIANT_FORMATS))
def test_render_makes_every_width_and_format_keeping_the_aspect_ratio(width, fmt):
    _, data = original(1000, 600)
    made = render(data, width, fmt)
    with Image.open(io.BytesIO(made)) as image:
        image.load()
        assert image.format == PILLOW_FORMAT[fmt]
        expected_width = 1000 if width is None or width >= 1000 else width
        assert image.size == (expected_width, round(600 * expected_width / 1000))


def test_render_never_enlarges_and_keeps_a_tall_image_tall():
    _, data = original(100, 400)
    with Image.open(io.BytesIO(render(data, 1024, "webp"))) as image:
        assert image.size == (100, 400)
    with Image.open(io.BytesIO(render(data, 64, "jpeg"))) as image:
        assert image.size == (64, 256)


def test_render_scales_a_jpeg_original():
    _, data = original(1024, 1024, "jpeg")
    with Image.open(io.BytesIO(render(data, 128, "png"))) as image:
        assert image.size == (128, 128) and image.format == "PNG"


@pytest.mark.parametrize(
    ("width", "fmt", "message"),
    [
        ("100", None, "query.width: must be one of 64, 128, 256, 512, 1024"),
        ("abc", None, "query.width"),
        ("256.0", None, "query.width"),
        (" 256", None, "query.width"),
        ("", None, "query.width"),
        ("0x100", None, "query.width"),
        (None, "gif", "query.format: must be one of png, webp, jpeg, avif"),
        (None, "WEBP", "query.format"),
        (None, "", "query.format"),
    ],
)
def test_bad_width_or_format_is_refused_naming_the_allowed_values(width, fmt, message):
    with pytest.raises(InvalidImageRequest) as caught:
        parse_variant(width, fmt)
    assert message in caught.value.message


def test_plan_serves_the_original_when_nothing_changes():
    detail, _ = original(512, 512)
    assert plan(detail, VariantSpec()) is None
    assert plan(detail, VariantSpec(format="png")) is None
    assert plan(detail, VariantSpec(width=512)) is None  # at the original's width
    assert plan(detail, VariantSpec(width=1024, format="png")) is None  # above it
    key, width, fmt = plan(detail, VariantSpec(width=1024, format="webp"))
    assert (key, width, fmt) == (f"{detail.guid}.full.webp", None, "webp")
    key, width, fmt = plan(detail, VariantSpec(width=256))
    assert (key, width, fmt) == (f"{detail.guid}.w256.png", 256, "png")


def test_every_variant_key_names_its_image_for_gc_and_delete():
    guid = uuid4()
    keys = all_variant_keys(guid)
    assert len(keys) == len(set(keys)) == (len(WIDTHS) + 1) * len(VARIANT_FORMATS)
    assert {guid_of(key) for key in keys} == {guid}
    detail, _ = original()
    for width in [*WIDTHS, None]:
        for fmt in VARIANT_FORMATS:
            planned = plan(detail, VariantSpec(width, fmt))
            assert planned is None or planned[0] in all_variant_keys(detail.guid)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/avif,image/webp,image/apng,*/*;q=0.8", "avif"),
        ("image/webp,*/*", "webp"),
        ("IMAGE/WEBP", "webp"),
        ("image/png,image/*;q=0.8", None),
        ("*/*", None),
        ("", None),
        (None, None),
    ],
)
def test_negotiation_prefers_avif_then_webp(accept, expected):
    assert negotiate(accept) == expected


class GatedBlobStore(InMemoryBlobStore):
    """Holds every read of `gated` until release(); counts puts."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: str | None = None
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
        self.puts: list[str] = []

    async def open(self, key, start=0, end=None):
        if key == self.gated:
            self.entered.set()
            await self.released.wait()
        return await super().open(key, start, end)

    async def put(self, key, data, content_type):
        self.puts.append(key)
        await super().put(key, data, content_type)


async def test_fifty_concurrent_first_requests_make_one_encode():
    blobs = GatedBlobStore()
    detail, data = original()
    await blobs.put(detail.filename, data, "image/png")
    blobs.gated = detail.filename
    maker = VariantMaker(blobs, max_concurrent_encodes=2)
    key, width, fmt = plan(detail, VariantSpec(256, "webp"))
    arrived, all_arrived = 0, asyncio.Event()

    async def request():
        nonlocal arrived
        arrived += 1
        if arrived == 50:
            all_arrived.set()  # this one, too, reaches its first wait with no await in between
        return await maker.find_or_make(detail, key, width, fmt)

    tasks = [asyncio.create_task(request()) for _ in range(50)]
    await blobs.entered.wait()  # the leader is reading the original
    await all_arrived.wait()
    blobs.released.set()
    results = await asyncio.gather(*tasks)
    assert maker.encoded == 1
    assert blobs.puts == [detail.filename, key]
    assert len({variant.sha256 for variant, _ in results}) == 1
    # Made and known: the next request neither reads the store nor encodes (a tile's bytes are kept).
    blobs.gated, blobs.released = key, asyncio.Event()  # a read of the variant now would hang
    variant, body = await maker.find_or_make(detail, key, width, fmt)
    assert variant == results[0][0] and body == results[0][1] and maker.encoded == 1


async def test_a_variant_another_process_made_is_read_not_made_again():
    blobs = InMemoryBlobStore()
    detail, data = original()
    await blobs.put(detail.filename, data, "image/png")
    key, width, fmt = plan(detail, VariantSpec(128, "jpeg"))
    first = VariantMaker(blobs)
    made, _ = await first.find_or_make(detail, key, width, fmt)
    second = VariantMaker(blobs)  # another process: nothing in memory
    found, body = await second.find_or_make(detail, key, width, fmt)
    assert second.encoded == 0 and found == made and body == blobs.blobs[key][0]


async def test_losing_the_race_to_store_serves_the_winners_bytes():
    class RacedStore(InMemoryBlobStore):
        async def put(self, key, data, content_type):
            if ".w" in key and key not in self.blobs:
                await super().put(key, b"the winner's bytes", content_type)  # another process, first
            await super().put(key, data, content_type)

    blobs = RacedStore()
    detail, data = original()
    await blobs.put(detail.filename, data, "image/png")
    key, width, fmt = plan(detail, VariantSpec(64, "png"))
    variant, body = await VariantMaker(blobs).find_or_make(detail, key, width, fmt)
    assert body == b"the winner's bytes" and variant.size_bytes == len(body)


async def test_a_missing_original_is_reported_and_a_failed_store_is_not_swallowed():
    blobs = InMemoryBlobStore()
    detail, _ = original()
    maker = VariantMaker(blobs)
    key, width, fmt = plan(detail, VariantSpec(64, "png"))
    with pytest.raises(OriginalMissing):
        await maker.find_or_make(detail, key, width, fmt)
    blobs.fail_with = StorageUnavailable("down")
    with pytest.raises(StorageUnavailable):
        await maker.find_or_make(detail, key, width, fmt)
    assert maker.known(key) is None and maker.encoded == 0


async def test_encodes_beyond_the_cap_wait_for_a_free_slot():
    """With a cap of 1, a second variant's encode starts only once the first's has finished."""
    import threading

    import pixyproxy.domain.variants as variants

    first_inside, let_first_finish = threading.Event(), threading.Event()
    order: list[str] = []
    real = variants.render

    def held(data, width, fmt):
        order.append(f"start {width}")
        if width == 64:
            first_inside.set()
            assert let_first_finish.wait(10)
        try:
            return real(data, width, fmt)
        finally:
            order.append(f"end {width}")

    blobs = InMemoryBlobStore()
    maker = VariantMaker(blobs, max_concurrent_encodes=1)
    detail, data = original(300, 200)
    await blobs.put(detail.filename, data, "image/png")
    variants.render = held
    try:
        first = asyncio.create_task(maker.find_or_make(detail, *plan(detail, VariantSpec(64, "webp"))))
        await asyncio.to_thread(first_inside.wait, 10)
        # In memory nothing else suspends: the second's first real wait is the cap.
        second = await started(lambda: maker.find_or_make(detail, *plan(detail, VariantSpec(128, "webp"))))
        assert order == ["start 64"]
        let_first_finish.set()
        await asyncio.gather(first, second)
    finally:
        variants.render = real
    assert order == ["start 64", "end 64", "start 128", "end 128"]


async def test_kept_bytes_stay_within_their_budget(monkeypatch):
    import pixyproxy.domain.variants as variants

    monkeypatch.setattr(variants, "KEPT_BYTES", 5_000)
    blobs = InMemoryBlobStore()
    maker = VariantMaker(blobs)
    made = []
    for _ in range(6):
        detail, data = original(400, 300)
        await blobs.put(detail.filename, data, "image/png")
        planned = plan(detail, VariantSpec(256, "png"))
        made.append((detail, planned, (await maker.find_or_make(detail, *planned))[1]))
    assert sum(len(b) for *_, b in made) > 5_000  # more than the budget was made
    assert maker._kept_bytes <= 5_000 and maker._kept_bytes == sum(len(b) for b in maker._kept.values())
    first_detail, first_plan, first_bytes = made[0]
    variant, body = await maker.find_or_make(first_detail, *first_plan)
    assert body is None and variant.size_bytes == len(first_bytes)  # dropped from memory, still known

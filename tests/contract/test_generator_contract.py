"""The ImageGenerator contract, run against every adapter in GENERATOR_ADAPTERS."""

import io

import pytest
from PIL import Image

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import EditRequest, GenerationRequest, PartialImage, SourceImage


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_generates_a_readable_image_for_the_prompt(generator):
    result = await generator.generate(GenerationRequest(prompt="a red bicycle"))
    with Image.open(io.BytesIO(result.data)) as image:
        image.verify()
    assert result.model


async def test_validate_accepts_the_defaults(generator):
    generator.validate(GenerationRequest(prompt="anything"))


async def test_an_unknown_model_is_refused_as_the_requests_fault(generator):
    # The offline generator knows before any call; a remote one learns it from its server (a 404).
    with pytest.raises(InvalidImageRequest, match=r"^model: "):
        request = GenerationRequest(prompt="x", model="no-such-model-xyz")
        generator.validate(request)
        await generator.generate(request)


@pytest.mark.parametrize(("fmt", "pillow"), [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")])
async def test_answers_in_the_format_and_size_asked(generator, fmt, pillow):
    result = await generator.generate(GenerationRequest(prompt="a kite", output_format=fmt, size="256x128"))
    image = opened(result.data)
    assert (image.format, image.size) == (pillow, (256, 128))


async def test_a_transparent_background_has_an_alpha_channel_with_transparent_pixels(generator):
    result = await generator.generate(
        GenerationRequest(prompt="a kite", background="transparent", size="64x64")
    )
    image = opened(result.data)
    assert image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 0


async def test_an_edit_changes_the_source_within_the_mask(generator):
    source = await generator.generate(GenerationRequest(prompt="a plain wall", size="64x64"))
    mask = io.BytesIO()
    keep = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    keep.paste((0, 0, 0, 0), (0, 0, 32, 64))  # only the left half may change
    keep.save(mask, format="PNG")
    images = [SourceImage(source.data, "image/png", "s.png", 64, 64)]
    masked = SourceImage(mask.getvalue(), "image/png", "m.png", 64, 64)
    result = await generator.edit(EditRequest(prompt="paint it over"), images, masked)
    before, after = opened(source.data).convert("RGB"), opened(result.data).convert("RGB")
    assert after.size == (64, 64)
    changed = [before.getpixel((x, 32)) != after.getpixel((x, 32)) for x in range(64)]
    assert all(changed[:28]) and not any(changed[36:])


async def test_partial_images_reach_the_callback(generator):
    seen: list[PartialImage] = []

    async def on_partial(partial: PartialImage) -> None:
        seen.append(partial)

    result = await generator.generate(GenerationRequest(prompt="x"), partial_images=2, on_partial=on_partial)
    assert [p.index for p in seen] == [0, 1] and result.data
    assert all(opened(p.data).format == "PNG" for p in seen)


async def test_init_and_ping_succeed_when_ready(generator):
    await generator.init()
    await generator.ping()


def test_names_itself(generator):
    assert generator.name and generator.default_model

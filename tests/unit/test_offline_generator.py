import io

from PIL import Image, ImageChops

from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from pixyproxy.domain.models import GenerationRequest


async def _image(prompt: str, size: str | None = None) -> Image.Image:
    result = await OfflineImageGenerator().generate(GenerationRequest(prompt=prompt, size=size))
    return Image.open(io.BytesIO(result.data))


async def test_same_prompt_same_png_at_least_512():
    first, second = await _image("a quiet harbour"), await _image("a quiet harbour")
    assert first.format == "PNG" and first.size[0] >= 512 and first.size[1] >= 512
    assert ImageChops.difference(first.convert("RGB"), second.convert("RGB")).getbbox() is None


async def test_different_prompts_differ_visibly():
    a, b = (await _image("a quiet harbour")).convert("RGB"), (await _image("a loud city")).convert("RGB")
    diff = ImageChops.difference(a, b).convert("L")
    changed = diff.point(lambda px: 255 if px > 40 else 0).histogram()[255]
    assert changed > 0.2 * a.size[0] * a.size[1]


async def test_requested_size_is_honoured():
    assert (await _image("wide", size="768x512")).size == (768, 512)

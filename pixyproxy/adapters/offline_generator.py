"""A generator that needs no network and no key: a real PNG drawn from the prompt with Pillow.

The same prompt always gives the same picture; different prompts give visibly different ones.
"""

import asyncio
import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import GeneratedImage, GenerationRequest

MODEL = "pixyproxy-offline"
QUALITIES = {"auto", "low", "medium", "high", "standard", "hd"}
MIN_SIDE, MAX_SIDE = 256, 2048


def _size(size: str | None) -> tuple[int, int]:
    if size in (None, "auto"):
        return 512, 512
    width, height = (int(n) for n in size.split("x"))
    return width, height


def draw(prompt: str, width: int = 512, height: int = 512) -> bytes:
    seed = hashlib.sha256(prompt.encode()).digest()
    top, bottom = seed[0:3], seed[3:6]
    image = Image.new("RGB", (width, height))
    pixels = ImageDraw.Draw(image)
    for y in range(height):  # a vertical gradient between two prompt-derived colours
        t = y / max(1, height - 1)
        pixels.line(
            [(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    for i in range(6):  # shapes placed and coloured by the prompt's hash
        b = seed[6 + i * 4 : 10 + i * 4]
        x, y = b[0] * width // 256, b[1] * height // 256
        r = 20 + b[2] * min(width, height) // 1024
        colour = (b[3], b[0] ^ b[2], b[1] ^ b[3])
        box = [x - r, y - r, x + r, y + r]
        (pixels.ellipse if b[2] % 2 else pixels.rectangle)(box, fill=colour, outline=(255, 255, 255))
    font = ImageFont.load_default(size=max(14, width // 28))
    text = "\n".join(textwrap.wrap(prompt[:280], width=max(10, width // 20))[:8])
    pixels.multiline_text(
        (16, 16), text, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0)
    )
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # fast encode: this runs per request
    return out.getvalue()


class OfflineImageGenerator:
    name = "offline"
    default_model = MODEL

    def __init__(self, latency_seconds: float = 0.0) -> None:
        self.latency_seconds = latency_seconds  # lets benchmarks and demos imitate a slow provider

    def validate(self, request: GenerationRequest) -> None:
        if request.model not in (None, MODEL):
            raise InvalidImageRequest(f"model: the offline generator only has {MODEL!r}")
        if request.quality not in (None, *QUALITIES):
            raise InvalidImageRequest(f"quality: must be one of {', '.join(sorted(QUALITIES))}")
        width, height = _size(request.size)
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise InvalidImageRequest(f"size: each side must be between {MIN_SIDE} and {MAX_SIDE}")

    async def generate(self, request: GenerationRequest) -> GeneratedImage:
        self.validate(request)
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        width, height = _size(request.size)
        data = await asyncio.to_thread(draw, request.prompt, width, height)
        return GeneratedImage(data=data, model=MODEL, size=f"{width}x{height}", quality=request.quality)

    async def close(self) -> None:
        return None

"""A generator that needs no network and no key: real images drawn from the prompt with Pillow.

The same prompt always gives the same picture; different prompts give visibly different ones. It honours
everything a request can ask of OpenAI's Images API, each in a way the drawing shows: size (sides
16..3840), every quality (more shapes the higher it is), complexity (more shapes again), a transparent
background (an alpha channel), png, webp or jpeg with their compression, gif (its shapes sliding across
frame_count frames of frame_duration_ms each), svg (the shapes as vector shapes, the author model named
in its metadata), edits of a stored image (blended with the prompt's drawing, only where a mask is
transparent) and streamed previews. It reports its progress by stage (the imitated latency in tenths,
the drawing, each preview), so a job on the embedded default shows progress as a provider's would.
"""

import asyncio
import base64
import hashlib
import io
import textwrap
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, ImageChops, ImageDraw, ImageFont

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.image_formats import encode
from pixyproxy.domain.models import (
    EditRequest,
    GeneratedImage,
    GenerationRequest,
    OnPartial,
    PartialImage,
    SourceImage,
)
from pixyproxy.domain.pixel_budget import in_decode_slot
from pixyproxy.domain.progress import report_progress

MODEL = "pixyproxy-offline"
QUALITIES = {"auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"}
MIN_SIDE, MAX_SIDE = 16, 3840
DEFAULT_SIDE = 512
DEFAULT_FRAMES, DEFAULT_FRAME_MS = 4, 200  # a few frames: the offline gif stays small
# Shapes drawn: more for a higher quality or complexity, so each visibly changes the picture.
_EXTRA_SHAPES = {"xhigh": 2, "max": 4, "high": 1, "medium": 2, "low": 0}
LATENCY_STEPS = 10  # the imitated latency is waited, and reported, in this many steps


def _size(size: str | None) -> tuple[int, int] | None:
    """The asked size, or None for `auto`/absent (the generator picks)."""
    if size in (None, "auto"):
        return None
    width, height = (int(n) for n in size.split("x"))
    return width, height


def shape_count(quality: str | None = None, complexity: str | None = None) -> int:
    return 6 + _EXTRA_SHAPES.get(quality or "", 0) + _EXTRA_SHAPES.get(complexity or "", 0)


def _shapes(prompt: str, width: int, height: int, count: int) -> list[tuple[str, list[int], tuple]]:
    """(kind, box, colour) of each shape, placed and coloured by the prompt's hash."""
    seed = hashlib.sha256(prompt.encode()).digest() * 2
    shapes = []
    for i in range(count):
        b = seed[6 + i * 4 : 10 + i * 4]
        x, y = b[0] * width // 256, b[1] * height // 256
        r = max(2, (20 + b[2] * min(width, height) // 1024) * min(width, height) // DEFAULT_SIDE)
        colour = (b[3], b[0] ^ b[2], b[1] ^ b[3])
        shapes.append(("ellipse" if b[2] % 2 else "rectangle", [x - r, y - r, x + r, y + r], colour))
    return shapes


def _drawing(prompt: str, width: int, height: int, count: int = 6) -> tuple[Image.Image, Image.Image]:
    """(RGB picture, L mask of its shapes and text): the mask is what stays opaque on a transparent
    background."""
    seed = hashlib.sha256(prompt.encode()).digest()
    top, bottom = seed[0:3], seed[3:6]
    image = Image.new("RGB", (width, height))
    shapes = Image.new("L", (width, height), 0)
    pixels, solid = ImageDraw.Draw(image), ImageDraw.Draw(shapes)
    for y in range(height):  # a vertical gradient between two prompt-derived colours
        t = y / max(1, height - 1)
        pixels.line(
            [(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    for shape, box, colour in _shapes(prompt, width, height, count):
        getattr(pixels, shape)(box, fill=colour, outline=(255, 255, 255))
        getattr(solid, shape)(box, fill=255)
    font = ImageFont.load_default(size=max(14, width // 28))
    text = "\n".join(textwrap.wrap(prompt[:280], width=max(10, width // 20))[:8])
    for canvas, fill, stroke in ((pixels, (255, 255, 255), (0, 0, 0)), (solid, 255, 255)):
        canvas.multiline_text((16, 16), text, fill=fill, font=font, stroke_width=2, stroke_fill=stroke)
    return image, shapes


def draw(
    prompt: str,
    width: int = DEFAULT_SIDE,
    height: int = DEFAULT_SIDE,
    *,
    background: str | None = None,
    output_format: str = "png",
    compression: int | None = None,
    shapes: int = 6,
    frames: int | None = None,
    frame_ms: int | None = None,
    svg_author: str | None = None,
) -> bytes:
    if output_format == "svg":
        return vector(prompt, width, height, background, shapes, svg_author)
    image, mask = _drawing(prompt, width, height, shapes)
    if background == "transparent":
        image = image.convert("RGBA")
        image.putalpha(mask)
    if output_format == "gif":
        return animate(image, frames or DEFAULT_FRAMES, frame_ms or DEFAULT_FRAME_MS)
    return encode(image, output_format, compression)


def _scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at `size`; modes that do not scale smoothly (palette, 1-bit) are converted first."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    return image.resize(size) if image.size != size else image


def animate(image: Image.Image, frames: int, frame_ms: int) -> bytes:
    """An animated GIF: the picture sliding sideways, one step per frame, looping. Quantised once (one
    palette for every frame), so even 16 frames at 3840x2160 take about a second."""
    method = Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT
    base = image.quantize(colors=255, method=method)
    sequence = [ImageChops.offset(base, i * image.width // frames, 0) for i in range(frames)]
    out = io.BytesIO()
    sequence[0].save(
        out, format="GIF", save_all=True, append_images=sequence[1:], duration=frame_ms, loop=0, disposal=2
    )
    return out.getvalue()


def vector(
    prompt: str, width: int, height: int, background: str | None, shapes: int, author: str | None
) -> bytes:
    """A small SVG of the prompt's shapes (and its text), vector for vector."""
    seed = hashlib.sha256(prompt.encode()).digest()
    top, bottom = _hex(seed[0:3]), _hex(seed[3:6])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(prompt[:280])}</title>",
    ]
    if author:
        parts.append(f"<metadata>author: {escape(author)}</metadata>")
    if background != "transparent":
        parts += [
            f'<defs><linearGradient id="bg" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="{top}"/>'
            f'<stop offset="1" stop-color="{bottom}"/></linearGradient></defs>',
            f'<rect width="{width}" height="{height}" fill="url(#bg)"/>',
        ]
    for kind, (x0, y0, x1, y1), colour in _shapes(prompt, width, height, shapes):
        fill = _hex(colour)
        if kind == "ellipse":
            centre, radius = f'cx="{(x0 + x1) // 2}" cy="{(y0 + y1) // 2}"', (x1 - x0) // 2
            shape = f'<ellipse {centre} rx="{radius}" ry="{radius}"'
        else:
            shape = f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"'
        parts.append(f'{shape} fill="{fill}" stroke="#ffffff"/>')
    size = max(14, width // 28)
    parts.append(
        f'<text x="16" y="{16 + size}" font-family="sans-serif" font-size="{size}" fill="#ffffff" '
        f'stroke="#000000" stroke-width="1">{escape(prompt[:80])}</text></svg>'
    )
    return "\n".join(parts).encode()


def _hex(colour: bytes | tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour)


def raster_in_svg(data: bytes, width: int, height: int) -> bytes:
    """An SVG holding a raster picture (an edit asked for svg: the edit is a raster blend)."""
    href = quoteattr("data:image/png;base64," + base64.b64encode(data).decode())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><image width="{width}" height="{height}" href={href}/></svg>'
    ).encode()


def edit(
    prompt: str,
    images: list[bytes],
    mask: bytes | None = None,
    size: tuple[int, int] | None = None,
    *,
    background: str | None = None,
    output_format: str = "png",
    compression: int | None = None,
    frames: int | None = None,
    frame_ms: int | None = None,
) -> bytes:
    """images[0] blended half-and-half with the prompt's drawing (only where the mask is fully
    transparent), the references as thumbnails along the bottom edge."""
    # Each image is scaled in its own mode before any conversion, so a large upload is held decoded once.
    with Image.open(io.BytesIO(images[0])) as opened:
        if size is None:
            scale = min(1.0, MAX_SIDE / max(opened.size))
            size = (max(MIN_SIDE, round(opened.width * scale)), max(MIN_SIDE, round(opened.height * scale)))
        original = _scaled(opened, size).convert("RGBA")
    drawing, _ = _drawing(prompt, *size)
    edited = Image.blend(original, drawing.convert("RGBA"), 0.5)
    if mask is not None:
        with Image.open(io.BytesIO(mask)) as opened:
            rgba = opened if opened.mode == "RGBA" else opened.convert("RGBA")
            alpha = rgba.getchannel("A").resize(size)
        editable = alpha.point(lambda a: 255 if a == 0 else 0)  # as the API: alpha 0 marks what may change
        edited = Image.composite(edited, original, editable)
    side = max(MIN_SIDE, min(size) // 6)
    for i, reference in enumerate(images[1:]):
        with Image.open(io.BytesIO(reference)) as opened:
            thumbnail = _scaled(opened, (side, side)).convert("RGBA")
        x = i * side
        if x + side <= size[0]:
            edited.paste(thumbnail, (x, size[1] - side))
    if background == "transparent":
        edited.putalpha(original.getchannel("A"))
    else:
        edited = edited.convert("RGB")
    if output_format == "gif":
        return animate(edited, frames or DEFAULT_FRAMES, frame_ms or DEFAULT_FRAME_MS)
    if output_format == "svg":
        return raster_in_svg(encode(edited, "png"), *size)
    return encode(edited, output_format, compression)


def preview(data: bytes, index: int, count: int, output_format: str) -> bytes:
    """A coarse version of the final image: partial `index` of `count` gets sharper each time."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.copy()
    factor = 2 ** (count - index + 1)
    small = image.resize((max(1, image.width // factor), max(1, image.height // factor)))
    return encode(small.resize(image.size, Image.Resampling.NEAREST), output_format)


def _made_size(source: SourceImage, max_side: int) -> str:
    """The size an edit without one is drawn at: the source's, within the largest side."""
    scale = min(1.0, max_side / max(source.width, source.height))
    width = max(MIN_SIDE, round(source.width * scale))
    return f"{width}x{max(MIN_SIDE, round(source.height * scale))}"


def _preview_count(request: GenerationRequest, partial_images: int, on_partial: OnPartial | None) -> int:
    if on_partial is None or request.format in ("gif", "svg"):  # neither has previews
        return 0
    return max(0, min(3, partial_images))


class _Stages:
    """Stages done of a known number, each reported as a fraction."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def step(self) -> None:
        self.done += 1
        report_progress(self.done / self.total)


class OfflineImageGenerator:
    name = "offline"

    def __init__(self, latency_seconds: float = 0.0, model: str = MODEL) -> None:
        self.latency_seconds = latency_seconds  # lets benchmarks and demos imitate a slow provider
        self.default_model = model

    def validate(self, request: GenerationRequest) -> None:
        if request.model not in (None, self.default_model):
            raise InvalidImageRequest(f"model: the offline generator only has {self.default_model!r}")
        if request.quality not in (None, *QUALITIES):
            raise InvalidImageRequest(f"quality: must be one of {', '.join(sorted(QUALITIES))}")
        size = _size(request.size)
        if size is not None and not all(MIN_SIDE <= side <= MAX_SIDE for side in size):
            raise InvalidImageRequest(f"size: each side must be between {MIN_SIDE} and {MAX_SIDE}")

    async def generate(
        self,
        request: GenerationRequest,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        self.validate(request)
        stages = self._stages(request, partial_images, on_partial)
        await self._wait(stages)
        width, height = _size(request.size) or (DEFAULT_SIDE, DEFAULT_SIDE)
        data = await asyncio.to_thread(
            draw,
            request.prompt,
            width,
            height,
            background=request.background,
            output_format=request.format,
            compression=request.output_compression,
            shapes=shape_count(request.quality, request.complexity),
            frames=request.frame_count,
            frame_ms=request.frame_duration_ms,
            svg_author=request.svg.model if request.svg else None,
        )
        stages.step()
        return await self._answer(request, data, f"{width}x{height}", partial_images, on_partial, stages)

    async def edit(
        self,
        request: EditRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        self.validate(request)
        if not images:
            raise InvalidImageRequest("an edit needs an image")
        stages = self._stages(request, partial_images, on_partial)
        await self._wait(stages)
        data = await in_decode_slot(  # decodes every image it is given: a few at a time per process
            edit,
            request.prompt,
            [image.data for image in images],
            mask.data if mask is not None else None,
            _size(request.size),
            background=request.background,
            output_format=request.format,
            compression=request.output_compression,
            frames=request.frame_count,
            frame_ms=request.frame_duration_ms,
        )
        stages.step()
        size = request.size if request.size not in (None, "auto") else _made_size(images[0], MAX_SIDE)
        return await self._answer(request, data, size, partial_images, on_partial, stages)

    async def _answer(
        self,
        request: GenerationRequest,
        data: bytes,
        size: str,
        partial_images: int,
        on_partial: OnPartial | None,
        stages: _Stages,
    ) -> GeneratedImage:
        count = _preview_count(request, partial_images, on_partial)
        if on_partial is not None:
            for index in range(count):
                partial = await asyncio.to_thread(preview, data, index, count, request.format)
                await on_partial(PartialImage(index, partial, request.format))
                stages.step()
        return GeneratedImage(
            data=data,
            model=self.default_model,
            size=size,
            quality=request.quality,
            background=request.background,
            output_format=request.format,
            # Nothing to leave out of its shapes: what was asked is kept with the image, to be seen.
            usage={"provider_details": {"negative_prompt": request.negative_prompt}}
            if request.negative_prompt
            else None,
        )

    def _stages(
        self, request: GenerationRequest, partial_images: int, on_partial: OnPartial | None
    ) -> _Stages:
        waits = LATENCY_STEPS if self.latency_seconds else 0
        return _Stages(waits + 1 + _preview_count(request, partial_images, on_partial))

    async def _wait(self, stages: _Stages) -> None:
        """The imitated latency, in steps, each reported."""
        if self.latency_seconds:
            for _ in range(LATENCY_STEPS):
                await asyncio.sleep(self.latency_seconds / LATENCY_STEPS)
                stages.step()

    async def init(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

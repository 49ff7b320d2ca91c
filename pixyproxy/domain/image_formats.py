"""Checking generator output in the format it is to be stored in (Pillow for rasters, the svg module
for SVG).

An image is kept in the format it was made in (png, webp, jpeg, gif or svg). Bytes in that format are
verified and kept as they are; raster bytes in another raster format (a compatible server that ignored
output_format) are converted, so what is stored always matches its content type and filename. An SVG is
never made from a raster (nor a raster stored as an SVG): that is a generator failure.
"""

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pixyproxy.domain.errors import GeneratorError, InvalidImageRequest
from pixyproxy.domain.models import OUTPUT_FORMATS, SourceImage
from pixyproxy.domain.pixel_budget import MAX_IMAGE_PIXELS, check_image_pixels, png_data_complete
from pixyproxy.domain.svg import SvgError, svg_size

# Pillow refuses larger images as possible decompression bombs; generators return at most ~16 MP.
Image.MAX_IMAGE_PIXELS = 64_000_000
PILLOW_NAMES = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "gif": "GIF"}
MAX_UPLOAD_PIXELS = MAX_IMAGE_PIXELS
_FORMAT_OF = {name: fmt for fmt, name in PILLOW_NAMES.items()}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    width: int
    height: int
    sha256: str
    format: str  # png | webp | jpeg

    @property
    def content_type(self) -> str:
        return OUTPUT_FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return OUTPUT_FORMATS[self.format][1]


def sniff_format(data: bytes) -> str | None:
    """png, webp or jpeg from the first bytes, without decoding; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def encode(image: Image.Image, fmt: str, compression: int | None = None) -> bytes:
    """Pillow image -> bytes of `fmt`. compression (0-100) is the webp/jpeg quality, as the API means it."""
    out = io.BytesIO()
    if fmt == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=95 if compression is None else max(1, compression))
    elif fmt == "gif":
        image.save(out, format="GIF")
    elif fmt == "webp":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode or image.mode == "P" else "RGB")
        image.save(out, format="WEBP", quality=90 if compression is None else compression, method=0)
    else:
        image.save(out, format="PNG", compress_level=1)  # fast: this can run per request
    return out.getvalue()


def check_image(data: bytes, fmt: str = "png", compression: int | None = None) -> CheckedImage:
    """Return bytes of format `fmt` with their dimensions and hash; convert other formats; refuse non-images.

    CPU-bound (verify, maybe re-encode, hash): call it off the event loop.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}")
    if not data:
        raise GeneratorError("the generator returned no image data")
    if fmt == "svg":
        try:
            width, height = svg_size(data)
        except SvgError as exc:
            raise GeneratorError(f"the generator's SVG cannot be stored: {exc}") from None
        return CheckedImage(data, width, height, hashlib.sha256(data).hexdigest(), fmt)
    if not png_data_complete(data):
        raise GeneratorError("the generator returned an image cut short (its pixel data ends early)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            found, width, height = _FORMAT_OF.get(probe.format or ""), probe.width, probe.height
            probe.verify()  # checks structure (and a PNG's CRCs) without a full decode
        if found != fmt:
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image: Image.Image = opened
                if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                    image = image.convert("RGBA")
                data = encode(image, fmt, compression)
        elif fmt != "png":
            # verify() checks little of webp, jpeg and gif: decode once so truncated bytes are refused here
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        IndexError,  # Pillow's PNG reader on a file with no image data
        Image.DecompressionBombError,
    ) as exc:
        raise GeneratorError("the generator returned data that is not a readable image") from exc
    return CheckedImage(data, width, height, hashlib.sha256(data).hexdigest(), fmt)


def read_upload(data: bytes, where: str, stem: str) -> SourceImage:
    """Uploaded bytes (a PNG, WebP or JPEG) as a generator's edit takes them; anything else is the
    client's fault, named by `where`. The filename is ours (`stem` plus the format's extension), never
    the client's. CPU-bound (a full decode catches truncated files): call it off the event loop."""
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageRequest(f"{where}: must be a PNG, WebP or JPEG image")
    damaged = InvalidImageRequest(f"{where}: the {fmt} image cannot be read (damaged or cut short)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            check_image_pixels(width, height, where)  # from the header, before anything is decoded
            if not png_data_complete(data):
                raise damaged
            image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        IndexError,
        Image.DecompressionBombError,
    ) as exc:
        raise damaged from exc
    content_type, extension = OUTPUT_FORMATS[fmt]
    return SourceImage(data, content_type, f"{stem}.{extension}", width, height)

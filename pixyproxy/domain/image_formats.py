"""Checking and normalising generator output to PNG (Pillow is the one image library here)."""

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pixyproxy.domain.errors import GeneratorError

# Pillow refuses larger images as possible decompression bombs; generators return at most ~16 MP.
Image.MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class CheckedPng:
    data: bytes
    width: int
    height: int
    sha256: str


def to_checked_png(data: bytes) -> CheckedPng:
    """Return PNG bytes with their dimensions and hash; convert other formats; refuse non-images.

    CPU-bound (verify, maybe re-encode, hash): call it off the event loop.
    """
    if not data:
        raise GeneratorError("the generator returned no image data")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt, width, height = probe.format, probe.width, probe.height
            probe.verify()  # checks structure and CRCs without a full decode
        if fmt != "PNG":
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                    image = image.convert("RGBA")
                out = io.BytesIO()
                image.save(out, format="PNG")
                data = out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise GeneratorError("the generator returned data that is not a readable image") from exc
    return CheckedPng(data=data, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())

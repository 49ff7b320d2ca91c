"""Variants: an image at a smaller width or in another format, made on first request and kept.

A variant lives in the blob store beside its original, under a key that starts with the image's guid
(`{guid}.w256.webp`, `{guid}.full.avif`), so deleting an image can name every one of them and gc's
guid_of() sees a variant of a deleted image as an orphan. A variant's bytes never change once written
(the store refuses to overwrite), so what is known of one (hash, size) can be kept in memory.

Made once: requests for a variant not yet made share one encode in this process (single flight); across
processes the store's no-overwrite put decides, and the loser serves the winner's bytes.
"""

import asyncio
import hashlib
import io
import logging
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from PIL import Image

from pixyproxy.domain.errors import InvalidImageRequest, StorageUnavailable
from pixyproxy.domain.image_formats import encode
from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.ports.blobs import BlobStore
from pixyproxy.domain.single_flight import SingleFlight
from pixyproxy.domain.streams import read_whole
from pixyproxy.domain.svg import SvgError, looks_like_svg, rasterise, svg_size

log = logging.getLogger(__name__)

WIDTHS = (64, 128, 256, 512, 1024)
# format -> (content type, key extension)
VARIANT_FORMATS = {
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
    "jpeg": ("image/jpeg", "jpg"),
    "avif": ("image/avif", "avif"),
}
# Accept negotiation prefers these, in order; anything else falls back to the original's format.
NEGOTIATED = (("image/avif", "avif"), ("image/webp", "webp"))
FULL = "full"  # the key label of a variant at the original's width
DEFAULT_MAX_CONCURRENT_ENCODES = 2
KNOWN_VARIANTS = 10_000  # hashes and sizes kept in memory; ~200 bytes each
# The bytes of small variants (gallery tiles) kept in memory too, up to this much per process: a made
# tile is then served without opening its blob.
KEPT_BYTES = 32 * 1024 * 1024
KEPT_ONE_AT_MOST = 256 * 1024
_EXTENSION_FORMAT = {"png": "png", "webp": "webp", "jpg": "jpeg"}


@dataclass(frozen=True)
class VariantSpec:
    """What a client asked for; None means as the original (width) or as negotiated (format)."""

    width: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class Variant:
    """A made variant, read like an ImageDetail when its bytes are served (ETag = sha256)."""

    key: str
    sha256: str
    size_bytes: int
    content_type: str

    @property
    def filename(self) -> str:
        return self.key


_WIDTH_OF = {str(w): w for w in WIDTHS} | {w: w for w in WIDTHS}
_ALLOWED_WIDTHS = ", ".join(str(w) for w in WIDTHS)
_ALLOWED_FORMATS = ", ".join(VARIANT_FORMATS)


def parse_variant(width: str | int | None, fmt: str | None) -> VariantSpec:
    """The query's width and format, checked: InvalidImageRequest (422) naming the allowed values."""
    value = None
    if width is not None:
        value = _WIDTH_OF.get(width)  # exactly "256": not " 256", "256.0" or "0256"
        if value is None:
            raise InvalidImageRequest(f"query.width: must be one of {_ALLOWED_WIDTHS}")
    if fmt is not None and fmt not in VARIANT_FORMATS:
        raise InvalidImageRequest(f"query.format: must be one of {_ALLOWED_FORMATS}")
    return VariantSpec(value, fmt)


def negotiate(accept: str | None) -> str | None:
    """The best format the Accept header names (avif, then webp); None: keep the original's."""
    if not accept:
        return None
    offered = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    for content_type, fmt in NEGOTIATED:
        if content_type in offered:
            return fmt
    return None


def original_format(detail: ImageDetail) -> str:
    return detail.output_format or _EXTENSION_FORMAT.get(detail.filename.rsplit(".", 1)[-1], "png")


def variant_key(guid: UUID | str, label: str, fmt: str) -> str:
    return f"{guid}.{label}.{VARIANT_FORMATS[fmt][1]}"


def all_variant_keys(guid: UUID | str) -> list[str]:
    """Every key a variant of this image can have (to delete them without listing the store)."""
    labels = [f"w{w}" for w in WIDTHS] + [FULL]
    return [variant_key(guid, label, fmt) for label in labels for fmt in VARIANT_FORMATS]


def plan(detail: ImageDetail, spec: VariantSpec) -> tuple[str, int | None, str] | None:
    """(key, width to scale to or None, format) of the variant to serve; None: serve the original.

    A width at or above the original's is the original's width (never enlarged)."""
    own = original_format(detail)
    # A gif's or an svg's variants are rasters: a PNG of the gif's first frame, or of the svg drawn at
    # the width asked, unless another format is asked.
    fmt = spec.format or (own if own in VARIANT_FORMATS else "png")
    width = spec.width if spec.width is not None and spec.width < detail.width else None
    if width is None and fmt == own:
        return None
    return variant_key(detail.guid, f"w{width}" if width else FULL, fmt), width, fmt


def render(original: bytes, width: int | None, fmt: str) -> bytes:
    """Decode, scale to `width` keeping the aspect ratio, encode as `fmt`. CPU-bound: run in a thread.
    An SVG is drawn at `width` by resvg first (a kept library, never by hand); a gif gives its first
    frame."""
    if looks_like_svg(original):
        try:
            original = rasterise(original, width or svg_size(original)[0])
        except SvgError as exc:
            raise InvalidImageRequest(f"query.width: this SVG cannot be drawn as a raster: {exc}") from None
    with Image.open(io.BytesIO(original)) as opened:
        image: Image.Image = opened
        if width is not None and width < image.width:
            height = max(1, round(image.height * width / image.width))
            if image.format == "JPEG":
                image.draft(image.mode, (width, height))  # decode at a fraction of the size directly
            image.load()
            if image.mode == "P":  # a gif's palette cannot be averaged: its first frame in full colour
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            # A box reduction by the whole factor (an average of each block, cheap), then Lanczos for
            # what is left: near Lanczos quality at a fraction of its cost on a large original.
            factor = min(image.width // width, image.height // height)
            scaled = image.reduce(factor) if factor >= 2 else image
            if scaled.size != (width, height):
                scaled = scaled.resize((width, height), Image.Resampling.LANCZOS)
        else:
            image.load()
            scaled = image.copy()
    if fmt == "avif":
        if scaled.mode not in ("RGB", "RGBA"):
            scaled = scaled.convert("RGBA" if "A" in scaled.mode or scaled.mode == "P" else "RGB")
        out = io.BytesIO()
        scaled.save(out, format="AVIF", quality=70, speed=8)
        return out.getvalue()
    if fmt == "webp":
        out = io.BytesIO()
        if scaled.mode not in ("RGB", "RGBA"):
            scaled = scaled.convert("RGBA" if "A" in scaled.mode or scaled.mode == "P" else "RGB")
        scaled.save(out, format="WEBP", quality=80, method=2)  # method 4+ costs 5x for ~8% smaller
        return out.getvalue()
    return encode(scaled, fmt)


class OriginalMissing(Exception):
    """The original's bytes were not in the store when a variant was to be made from them."""


class VariantMaker:
    """Makes and finds variants in one blob store; one per process (the container's singleton)."""

    def __init__(
        self,
        blobs: BlobStore,
        max_concurrent_encodes: int = DEFAULT_MAX_CONCURRENT_ENCODES,
        known: int = KNOWN_VARIANTS,
    ) -> None:
        self.blobs = blobs
        self._encodes = asyncio.Semaphore(max_concurrent_encodes)
        self._known: OrderedDict[str, Variant] = OrderedDict()
        self._known_max = known
        self._flights: SingleFlight[tuple[Variant, bytes]] = (
            SingleFlight()
        )  # concurrent first requests: one leads
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._kept_bytes = 0
        self.encoded = 0  # encodes this process ran (tests and the bench count them)

    def known(self, key: str) -> Variant | None:
        return self._known.get(key)

    async def find_or_make(
        self, detail: ImageDetail, key: str, width: int | None, fmt: str
    ) -> tuple[Variant, bytes | None]:
        """The variant (and its bytes when they were just read or made; None when known already).

        Raises OriginalMissing when the original's bytes are gone (a delete in between, or lost)."""
        known = self._known.get(key)
        if known is not None:
            return known, self._kept.get(key)
        return await self._flights.run(key, lambda: self._find_or_make(detail, key, width, fmt))

    async def _find_or_make(
        self, detail: ImageDetail, key: str, width: int | None, fmt: str
    ) -> tuple[Variant, bytes]:
        data = await self._read(key)
        if data is None:
            original = await self._read(detail.filename)
            if original is None:
                raise OriginalMissing(detail.filename)
            async with self._encodes:
                data = await asyncio.to_thread(render, original, width, fmt)
                self.encoded += 1
            try:
                await self.blobs.put(key, data, VARIANT_FORMATS[fmt][0])
            except StorageUnavailable:
                # Another process stored it first (the store never overwrites): serve its bytes.
                stored = await self._read(key)
                if stored is None:
                    raise
                data = stored
        variant = Variant(key, hashlib.sha256(data).hexdigest(), len(data), VARIANT_FORMATS[fmt][0])
        self._known[key] = variant
        if len(self._known) > self._known_max:
            self._known.popitem(last=False)
        self._keep(key, data)
        return variant, data

    def _keep(self, key: str, data: bytes) -> None:
        if len(data) > KEPT_ONE_AT_MOST:
            return
        self._kept[key] = data
        self._kept_bytes += len(data)
        while self._kept_bytes > KEPT_BYTES:
            _, dropped = self._kept.popitem(last=False)  # the oldest kept first
            self._kept_bytes -= len(dropped)

    async def _read(self, key: str) -> bytes | None:
        stream = await self.blobs.open(key)
        if stream is None:
            return None
        return await read_whole(stream)

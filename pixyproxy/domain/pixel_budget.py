"""Memory bounded by design where images are decoded: a pixel budget read from the headers before any
decode, complete pixel data before a PNG is taken, and few decodes at once.

A decoded image costs about 4 bytes a pixel whatever its file size (a 96-byte PNG can claim 4096x4096),
so what bounds memory is the pixels named, not the bytes sent:

* each image at most MAX_IMAGE_PIXELS, and one request's images, mask and references together at most
  MAX_REQUEST_PIXELS, judged from the headers (Pillow's Image.open reads only those);
* a PNG whose pixel data ends before its last row is refused without decoding it (Pillow would fill
  the rest in, or allocate the whole image first to find out);
* decodes and edit renders run in `decode_slot()`, a few at a time per process like variant encodes,
  so peak memory is the slots times one image, not the thread pool times the requests.
"""

import asyncio
import io
import struct
import weakref
import zlib
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Generic, ParamSpec, Protocol, TypeVar

from PIL import Image, UnidentifiedImageError

from pixyproxy.domain.errors import InvalidImageRequest

MAX_IMAGE_PIXELS = 4096 * 4096  # an uploaded image is decoded whole: no larger than a generator draws
MAX_REQUEST_PIXELS = 4 * MAX_IMAGE_PIXELS  # all of one request's images, mask and references
DECODE_SLOTS = 2

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
# Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 16

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")
_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def decode_slot() -> asyncio.Semaphore:
    """This process's decode slots (one semaphore per event loop, so tests' loops do not share one)."""
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(DECODE_SLOTS)
    return slot


async def in_decode_slot(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run CPU- and memory-heavy image work in a thread once a decode slot is free."""
    async with decode_slot():
        return await asyncio.to_thread(work, *args, **kwargs)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header alone; None when Pillow cannot read one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def check_image_pixels(width: int, height: int, where: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImageRequest(
            f"{where}: the image is {width}x{height}; at most {MAX_IMAGE_PIXELS:,} pixels"
        )


def check_request_pixels(sizes: Iterable[tuple[str, int, int]]) -> None:
    """Each (where, width, height) within the per-image budget, and all of them within the request's."""
    total = 0
    for where, width, height in sizes:
        check_image_pixels(width, height, where)
        total += width * height
    if total > MAX_REQUEST_PIXELS:
        raise InvalidImageRequest(
            f"the images of this request add up to {total:,} pixels; at most {MAX_REQUEST_PIXELS:,} "
            "(images, mask and references together)"
        )


def check_upload_headers(images: Sequence[bytes], mask: bytes | None) -> None:
    """The budget for uploads, from their headers; an image without a readable header is left to the
    decode that names it."""
    named = [("image", data) for data in images] + ([("mask", mask)] if mask is not None else [])
    sizes = []
    for where, data in named:
        size = header_size(data)
        if size is not None:
            sizes.append((where, *size))
    check_request_pixels(sizes)


def png_data_complete(data: bytes) -> bool:
    """True when a PNG's compressed data inflates to every row its header promises; inflated in steps
    and counted, never held. False for a PNG cut short or with too little data; True for other formats."""
    if not data.startswith(_PNG_SIGNATURE):
        return True
    try:
        expected = _png_raw_size(data)
        inflater = zlib.decompressobj()
        produced = 0
        for chunk in _idat_chunks(data):
            pending = chunk
            while pending and produced < expected:
                produced += len(inflater.decompress(pending, _INFLATE_STEP))
                pending = inflater.unconsumed_tail
            if produced >= expected:
                return True
        return produced >= expected
    except (zlib.error, struct.error, ValueError):
        return False


def _png_raw_size(data: bytes) -> int:
    """Bytes the header promises once inflated: each row's filter byte and its packed samples."""
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ValueError("no IHDR")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _CHANNELS[colour] if colour in _CHANNELS else 0
    if not (width and height and bits):
        raise ValueError("an empty or unknown image")

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return rows(width, height)
    return sum(
        rows(
            (width - x0 + dx - 1) // dx if width > x0 else 0,
            (height - y0 + dy - 1) // dy if height > y0 else 0,
        )
        for x0, y0, dx, dy in _ADAM7
    )


def _idat_chunks(data: bytes) -> Iterable[bytes]:
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if len(body) < length:
            yield body  # cut short inside a chunk: what is there is all there is
            return
        if kind == b"IDAT":
            yield body
        elif kind == b"IEND":
            return
        offset += 12 + length


class Sized(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


def edit_sizes(
    source: Sized, mask: Sized | None, references: Sequence[Sized | None]
) -> list[tuple[str, int, int]]:
    """(where, width, height) of a stored-image edit's images, every reference as often as it is named."""
    sizes = [("image", source.width, source.height)]
    sizes += [("reference_guids", r.width, r.height) for r in references if r is not None]
    if mask is not None:
        sizes.append(("mask_guid", mask.width, mask.height))
    return sizes


class ReadOnce(Generic[T, V]):
    """read(item) at most once per key(item): an image named several times in a request is read once."""

    def __init__(self, read: Callable[[T], Awaitable[V]], key: Callable[[T], Hashable]) -> None:
        self._read = read
        self._key = key
        self._found: dict[Hashable, V] = {}

    async def __call__(self, item: T) -> V:
        key = self._key(item)
        if key not in self._found:
            self._found[key] = await self._read(item)
        return self._found[key]

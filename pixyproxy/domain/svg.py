"""SVG as an image format: its size read from the markup (parsed by defusedxml, which refuses entity
expansion and external entities), and its rasterisation for width variants (resvg, imported when
needed). SVG bytes are kept as the generator made them: they are served under a sandboxing CSP, so a
script in one never runs."""

import re

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

MAX_SVG_BYTES = 10 * 1024 * 1024
_OUTSIDE_REFERENCE = re.compile(rb"""href\s*=\s*["'](?!\s*(#|data:))""", re.IGNORECASE)
_LENGTH = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(px)?\s*$")


class SvgError(ValueError):
    """The bytes are not an SVG this service can store."""


def _length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    return float(match.group(1)) if match else None


def svg_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the root's width and height, else its viewBox."""
    if len(data) > MAX_SVG_BYTES:
        raise SvgError("larger than this server stores")
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise SvgError(f"not well-formed XML ({type(exc).__name__})") from None
    if root.tag not in ("{http://www.w3.org/2000/svg}svg", "svg"):
        raise SvgError("its root element is not <svg>")
    width, height = _length(root.get("width")), _length(root.get("height"))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if (width is None or height is None) and len(box) == 4:
        try:
            box_width, box_height = float(box[2]), float(box[3])
        except ValueError:
            box_width = box_height = 0.0
        if box_width > 0 and box_height > 0:
            if width is None and height is None:
                width, height = box_width, box_height
            elif width is None and height is not None:
                width = height * box_width / box_height
            elif width is not None:
                height = width * box_height / box_width
    if not width or not height:
        raise SvgError("it states no size (width and height, or a viewBox)")
    return max(1, round(width)), max(1, round(height))


def looks_like_svg(data: bytes) -> bool:
    """Markup rather than a raster (every raster format starts with binary magic)."""
    return data.lstrip()[:1] == b"<"


def rasterise(data: bytes, width: int) -> bytes:
    """PNG bytes of the SVG drawn `width` pixels wide (resvg: no scripts, no network). A reference to
    anything but the SVG itself or a data: URL is refused, so no file of the server is ever drawn in.
    CPU-bound: call it off the event loop."""
    import resvg_py

    if _OUTSIDE_REFERENCE.search(data):
        raise SvgError("it refers to files or URLs outside itself")
    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=data.decode("utf-8"), width=width))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SvgError(f"cannot be drawn ({exc})") from None

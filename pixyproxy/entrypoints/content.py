"""What `GET|HEAD /image/{guid}/content` answers: status, headers and byte range (ETag, 304, Range)."""

from dataclasses import dataclass

from pixyproxy.domain.models import SVG, ContentRange, ImageDetail
from pixyproxy.domain.variants import Variant
from pixyproxy.entrypoints.byte_ranges import parse_range

IMMUTABLE = "public, max-age=31536000, immutable"
SVG_POLICY = b"default-src 'none'; style-src 'unsafe-inline'; sandbox"
_FIXED = [
    (b"cache-control", IMMUTABLE.encode()),
    (b"accept-ranges", b"bytes"),
    (b"x-content-type-options", b"nosniff"),
]


@dataclass(frozen=True)
class ContentAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    byte_range: ContentRange | None  # None: the whole image
    send_body: bool  # False for 304 and HEAD


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in header.split(","))


def answer_content(
    detail: ImageDetail | Variant,  # reads sha256, size_bytes, filename and content_type
    method: str,
    if_none_match: str | None = None,
    if_range: str | None = None,
    range_header: str | None = None,
) -> ContentAnswer:
    """Raises HTTPException(416) for a range outside the image."""
    etag = f'"{detail.sha256}"'
    headers = [
        (b"etag", etag.encode()),
        *_FIXED,
        (b"content-disposition", f'inline; filename="{detail.filename}"'.encode("latin-1")),
    ]
    if etag_matches(if_none_match, etag):
        return ContentAnswer(304, headers, None, send_body=False)
    byte_range = None
    if if_range is None or if_range == etag:  # a stale If-Range gets the whole image
        byte_range = parse_range(range_header, detail.size_bytes)
    status, length = 200, detail.size_bytes
    if byte_range is not None:
        status, length = 206, byte_range.length
        content_range = f"bytes {byte_range.start}-{byte_range.end}/{detail.size_bytes}"
        headers.append((b"content-range", content_range.encode()))
    headers += [(b"content-length", str(length).encode()), (b"content-type", detail.content_type.encode())]
    if detail.content_type == SVG:  # markup that could hold scripts: never run, never a page of ours
        headers.append((b"content-security-policy", SVG_POLICY))
    return ContentAnswer(status, headers, byte_range, send_body=method != "HEAD")

"""A hand-written table of hostile requests against the real service (embedded default).

Each row must be answered with a 4xx JSON error in the one shape, and change nothing: the list of images
is the same and no file appears in (or outside) the image folder.
"""

import base64
import io
import json
import socket
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.mcp_support import ACCEPT as MCP_ACCEPT
from tests.e2e.mcp_support import OPENING
from tests.e2e.server import run_server
from tests.support.webhook_receiver import SECRET

GUID = "00000000-0000-4000-8000-000000000000"
JSON = {"Content-Type": "application/json"}


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def post(content: bytes | str | None = None, headers: dict | list | None = None, json=None, path="/image/"):
    return {"method": "POST", "url": path, "content": content, "headers": headers, "json": json}


def get(url: str, headers: dict | list | None = None, method: str = "GET"):
    return {"method": method, "url": url, "headers": headers}


V1_GEN, V1_EDIT = "/v1/images/generations", "/v1/images/edits"
MULTIPART = {"Content-Type": "multipart/form-data; boundary=b"}


def _png(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, format=fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


TINY_PNG, TINY_JPEG = _png((16, 16)), _png((16, 16), "JPEG")
# A valid PNG header that claims 60000x60000 pixels: refused before any of it is decoded.
PIXEL_BOMB = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))

# The header says 4096x4096 RGBA (64 MiB decoded); the data inflates to 100 bytes.
SHORT_BOMB = (
    b"\x89PNG\r\n\x1a\n"
    + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4096, 4096, 8, 6, 0, 0, 0))
    + _chunk(b"IDAT", zlib.compress(b"\x00" * 100))
    + _chunk(b"IEND", b"")
)


def form(parts: list[tuple[str, str | None, bytes]], path: str = V1_EDIT):
    """A multipart body of (name, filename or None for a text field, bytes), as an SDK sends it."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = b"Content-Type: image/png\r\n" if filename else b""
        body += (
            b"--b\r\nContent-Disposition: " + disposition.encode() + b"\r\n" + kind + b"\r\n" + data + b"\r\n"
        )
    return post(body + b"--b--\r\n", MULTIPART, path=path)


# (id, request, expected status)
CASES = [
    # Malformed JSON and bodies that are not a JSON object.
    ("json-truncated", post(b'{"prompt": "a lighthouse"', JSON), 422),
    ("json-trailing-garbage", post(b'{"prompt": "x"} trailing', JSON), 422),
    ("json-single-quotes", post(b"{'prompt': 'x'}", JSON), 422),
    ("json-empty-body", post(b"", JSON), 422),
    ("json-null", post(b"null", JSON), 422),
    ("json-string", post(b'"a lighthouse"', JSON), 422),
    ("json-array", post(b'[{"prompt": "x"}]', JSON), 422),
    ("json-number", post(b"12", JSON), 422),
    ("json-nested-deep", post(b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON), 422),
    ("json-nan", post(b'{"prompt": NaN}', JSON), 422),
    ("json-bom", post(b'\xef\xbb\xbf{"prompt": "x", "size": "1x1"}', JSON), 422),
    # Wrong content types.
    ("ctype-text-plain", post(b'{"prompt": "x"}', {"Content-Type": "text/plain"}), 422),
    ("ctype-form", post(b"prompt=x", {"Content-Type": "application/x-www-form-urlencoded"}), 422),
    (
        "ctype-multipart",
        post(b"--b\r\n\r\nx\r\n--b--", {"Content-Type": "multipart/form-data; boundary=b"}),
        422,
    ),
    ("ctype-xml", post(b"<prompt>x</prompt>", {"Content-Type": "application/xml"}), 422),
    ("ctype-missing", post(b'{"prompt": "x"}', {"Content-Type": ""}), 422),
    (
        "ctype-latin1",
        post(
            '{"prompt": "caf\xe9"}'.encode("latin-1"), {"Content-Type": "application/json; charset=latin-1"}
        ),
        422,
    ),
    # Prompts: empty, huge, not UTF-8, control characters, wrong types.
    ("prompt-missing", post(json={}), 422),
    ("prompt-empty", post(json={"prompt": ""}), 422),
    ("prompt-blank", post(json={"prompt": " \n\t "}), 422),
    ("prompt-over-limit", post(json={"prompt": "x" * 4001}), 422),
    ("prompt-over-ceiling", post(json={"prompt": "x" * 40_000}), 422),
    ("prompt-over-body-limit", post(json={"prompt": "x" * 1_100_000}), 413),
    ("prompt-not-utf8", post(b'{"prompt": "\xff\xfe\xfd"}', JSON), 422),
    ("prompt-lone-surrogate", post(b'{"prompt": "a \\ud800 b"}', JSON), 422),
    ("prompt-nul", post(json={"prompt": "a\x00b"}), 422),
    ("prompt-escape-sequence", post(json={"prompt": "\x1b[2J\x1b[31mred"}), 422),
    ("prompt-bell-backspace", post(json={"prompt": "a\x07\x08b"}), 422),
    ("prompt-line-separator", post(json={"prompt": "a\u2028b"}), 422),
    ("prompt-c1-control", post(json={"prompt": "a\x85b"}), 422),
    ("prompt-sql-with-nul", post(json={"prompt": "'; DROP TABLE images; --\x00"}), 422),
    ("prompt-html-with-escape", post(json={"prompt": "<script>alert(1)</script>\x1b"}), 422),
    ("prompt-number", post(json={"prompt": 42}), 422),
    ("prompt-list", post(json={"prompt": ["a", "b"]}), 422),
    ("prompt-object", post(json={"prompt": {"$ne": ""}}), 422),
    ("prompt-null", post(json={"prompt": None}), 422),
    ("prompt-bool", post(json={"prompt": True}), 422),
    # The other fields, with injection attempts.
    ("size-absurd", post(json={"prompt": "x", "size": "99999x99999"}), 422),
    ("size-sql", post(json={"prompt": "x", "size": "1024x1024'; --"}), 422),
    ("quality-html", post(json={"prompt": "x", "quality": "<b>hd</b>"}), 422),
    ("model-traversal", post(json={"prompt": "x", "model": "../../etc/passwd"}), 422),
    ("model-unknown", post(json={"prompt": "x", "model": "a/../../b"}), 422),
    # Headers: huge, duplicated.
    ("idempotency-key-10kb", post(json={"prompt": "x"}, headers={"Idempotency-Key": "k" * 10_240}), 422),
    (
        "idempotency-key-duplicated",
        post(json={"prompt": "x"}, headers=[("Idempotency-Key", "one"), ("Idempotency-Key", "two")]),
        422,
    ),
    ("content-type-huge", post(b'{"prompt": "x"}', {"Content-Type": "application/" + "x" * 60_000}), 422),
    ("huge-unrelated-header-on-bad-body", post(b"{", {**JSON, "X-Padding": "p" * 60_000}), 422),
    # Guids: path traversal, URL-encoded, 10 KB, not UUIDs.
    ("guid-traversal-encoded", get("/image/..%2F..%2Fpixyproxy-data%2Fpixyproxy.db"), 404),
    ("guid-traversal-double-encoded", get("/image/%252e%252e%252fetc%252fpasswd"), 404),
    ("guid-traversal-dots-encoded", get("/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd/content"), 404),
    ("guid-backslashes", get("/image/..%5C..%5Cwindows%5Cwin.ini/content"), 404),
    ("guid-nul", get("/image/%00/content"), 404),
    ("guid-10kb", get("/image/" + "a" * 10_240), 404),
    ("guid-10kb-content", get("/image/" + "f" * 10_240 + "/content"), 404),
    ("guid-10kb-head", get("/image/" + "0" * 10_240 + "/content", method="HEAD"), 404),
    ("guid-10kb-url", get("/image/" + "%41" * 3414 + "/url"), 404),
    ("guid-with-png", get(f"/image/{GUID}.png/content"), 404),
    ("guid-filename", get(f"/image/{GUID}%2Fcontent"), 404),
    ("guid-sql", get("/image/1'%20OR%20'1'='1"), 404),
    ("guid-html", get("/image/%3Cscript%3Ealert(1)%3C%2Fscript%3E"), 404),
    ("guid-unicode", get("/image/%E2%80%AE%F0%9F%A6%86"), 404),
    ("guid-not-utf8", get("/image/%FF%FE/content"), 404),
    ("guid-unknown-uuid", get(f"/image/{GUID}/content"), 404),
    # Hostile JSON encodings: UTF-8 only (json.loads would read UTF-16 and UTF-32 bodies).
    *(
        (f"json-{name}", post('{"prompt": "a lighthouse"}'.encode(codec), JSON, path=where), 422)
        for name, codec in [
            ("utf16", "utf-16"),
            ("utf16-le", "utf-16-le"),
            ("utf16-be", "utf-16-be"),
            ("utf32", "utf-32"),
        ]
        for where in ("/image/", "/image/jobs")
    ),
    ("json-utf16-v1", post('{"prompt": "x"}'.encode("utf-16"), JSON, path=V1_GEN), 400),
    ("json-raw-nul-byte", post(b'{"prompt": "a\x00b"}', JSON), 422),
    # New options and formats: each checked, an unknown field named, nothing made.
    ("field-unknown", post(json={"prompt": "x", "sise": "1024x1024"}), 422),
    (
        "field-unknown-nested-svg",
        post(json={"prompt": "x", "output_format": "svg", "svg": {"model": "a", "x": 1}}),
        422,
    ),
    ("frames-without-gif", post(json={"prompt": "x", "frame_count": 4}), 422),
    ("frames-too-many", post(json={"prompt": "x", "output_format": "gif", "frame_count": 17}), 422),
    ("frames-too-few", post(json={"prompt": "x", "output_format": "gif", "frame_count": 1}), 422),
    ("frame-duration-zero", post(json={"prompt": "x", "output_format": "gif", "frame_duration_ms": 0}), 422),
    (
        "frame-duration-string",
        post(json={"prompt": "x", "output_format": "gif", "frame_duration_ms": "1e9"}),
        422,
    ),
    ("svg-without-svg-format", post(json={"prompt": "x", "svg": {"model": "a"}}), 422),
    (
        "svg-model-injection",
        post(json={"prompt": "x", "output_format": "svg", "svg": {"model": "<script>"}}),
        422,
    ),
    (
        "svg-effort-unknown",
        post(
            json={
                "prompt": "x",
                "output_format": "svg",
                "svg": {"model": "a", "reasoning": {"effort": "ultra"}},
            }
        ),
        422,
    ),
    ("complexity-unknown", post(json={"prompt": "x", "complexity": "extreme"}), 422),
    ("negative-prompt-number", post(json={"prompt": "x", "negative_prompt": 7}), 422),
    ("negative-prompt-list", post(json={"prompt": "x", "negative_prompt": ["a"]}), 422),
    ("negative-prompt-empty", post(json={"prompt": "x", "negative_prompt": "  "}), 422),
    ("negative-prompt-too-long", post(json={"prompt": "x", "negative_prompt": "a" * 4001}), 422),
    ("negative-prompt-nul", post(json={"prompt": "x", "negative_prompt": "a\x00b"}), 422),
    ("job-negative-prompt-number", post(json={"prompt": "x", "negative_prompt": 7}, path="/image/jobs"), 422),
    ("gif-compressed", post(json={"prompt": "x", "output_format": "gif", "output_compression": 50}), 422),
    ("format-bmp", post(json={"prompt": "x", "output_format": "bmp"}), 422),
    ("size-over-3840", post(json={"prompt": "x", "size": "3856x2160"}), 422),
    ("model-unknown", post(json={"prompt": "x", "model": "dall-e-3"}), 422),
    (
        "gif-job-previews",
        post(json={"prompt": "x", "output_format": "gif", "partial_images": 2}, path="/image/jobs"),
        422,
    ),
    ("v1-style", post(json={"prompt": "x", "style": "vivid"}, path=V1_GEN), 400),
    ("v1-svg-no-model", post(json={"prompt": "x", "output_format": "svg", "svg": {}}, path=V1_GEN), 400),
    ("models-post", post(json={}, path="/models"), 405),
    # Usage periods: only a date or an RFC 3339 date-time with a zone, until after since.
    ("usage-since-text", get("/usage?since=yesterday"), 422),
    ("usage-since-epoch", get("/usage?since=1700000000"), 422),
    ("usage-since-no-zone", get("/usage?since=2026-11-24T00:00:00"), 422),
    ("usage-since-not-a-day", get("/usage?since=2026-02-30"), 422),
    ("usage-since-year-zero", get("/usage?since=0000-01-01"), 422),
    ("usage-since-huge-offset", get("/usage?since=2026-11-24T00:00:00%2B99:99"), 422),
    ("usage-since-sql", get("/usage?since=2026-01-01'%20OR%20'1'='1"), 422),
    ("usage-until-before-since", get("/usage?since=2026-11-25&until=2026-11-24"), 422),
    ("usage-until-equal-since", get("/usage?since=2026-11-24&until=2026-11-24"), 422),
    ("usage-until-10kb", get("/usage?until=" + "9" * 10_240), 422),
    ("usage-since-empty", get("/usage?since="), 422),
    ("usage-post", post(json={}, path="/usage"), 405),
    # Absurd limit and cursor values.
    ("limit-zero", get("/image/?limit=0"), 422),
    ("limit-negative", get("/image/?limit=-1"), 422),
    ("limit-over-max", get("/image/?limit=1001"), 422),
    ("limit-huge", get("/image/?limit=" + "9" * 400), 422),
    ("limit-float", get("/image/?limit=1.5"), 422),
    ("limit-exponent", get("/image/?limit=1e3"), 422),
    ("limit-nan", get("/image/?limit=NaN"), 422),
    ("limit-empty", get("/image/?limit="), 422),
    ("limit-text", get("/image/?limit=ten"), 422),
    ("limit-duplicated-last-bad", get("/image/?limit=1&limit=100000"), 422),
    ("cursor-empty", get("/image/?cursor="), 422),
    ("cursor-garbage", get("/image/?cursor=%25%25%25"), 422),
    ("cursor-too-long", get("/image/?cursor=" + "A" * 10_240), 422),
    ("cursor-sql", get("/image/?cursor=' OR 1=1; --"), 422),
    ("cursor-html", get("/image/?cursor=%3Cscript%3E"), 422),
    ("cursor-nul", get("/image/?cursor=%00"), 422),
    ("cursor-not-base64-text", get(f"/image/?cursor={b64('just text')}"), 422),
    ("cursor-naive-time", get(f"/image/?cursor={b64('2026-01-01T00:00:00|5')}"), 422),
    ("cursor-negative-id", get(f"/image/?cursor={b64('2026-01-01T00:00:00+00:00|-5')}"), 422),
    ("cursor-id-beyond-bigint", get(f"/image/?cursor={b64('2026-01-01T00:00:00+00:00|' + '9' * 30)}"), 422),
    ("cursor-year-0", get(f"/image/?cursor={b64('0001-01-01T00:00:00+14:00|1')}"), 422),
    ("cursor-year-10000", get(f"/image/?cursor={b64('9999-12-31T23:59:59-14:00|1')}"), 422),
    ("cursor-sql-in-id", get(f"/image/?cursor={b64('2026-01-01T00:00:00+00:00|1 OR 1=1')}"), 422),
    # Jobs: counts, webhooks that point inside, previews, ids and list options.
    ("job-n-zero", post(json={"prompt": "x", "n": 0}, path="/image/jobs"), 422),
    ("job-n-eleven", post(json={"prompt": "x", "n": 11}, path="/image/jobs"), 422),
    ("job-n-float", post(json={"prompt": "x", "n": 1.5}, path="/image/jobs"), 422),
    ("job-n-text", post(json={"prompt": "x", "n": "ten"}, path="/image/jobs"), 422),
    ("job-partials-4", post(json={"prompt": "x", "partial_images": 4}, path="/image/jobs"), 422),
    ("job-prompt-nul", post(json={"prompt": "a\x00b"}, path="/image/jobs"), 422),
    ("job-json-array", post(b'[{"prompt": "x"}]', JSON, path="/image/jobs"), 422),
    (
        "job-webhook-loopback",
        post(json={"prompt": "x", "webhook_url": "http://127.0.0.1/h"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-metadata",
        post(json={"prompt": "x", "webhook_url": "http://169.254.169.254/latest"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-private",
        post(json={"prompt": "x", "webhook_url": "https://10.1.2.3/"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-ipv6-loopback",
        post(json={"prompt": "x", "webhook_url": "http://[::1]/"}, path="/image/jobs"),
        422,
    ),
    *(
        (
            f"job-webhook-{name}",
            post(json={"prompt": "x", "webhook_url": f"http://[{host}]/"}, path="/image/jobs"),
            422,
        )
        for name, host in [
            ("nat64-loopback", "64:ff9b::7f00:1"),
            ("nat64-metadata", "64:ff9b::a9fe:a9fe"),
            ("nat64-local-loopback", "64:ff9b:1:7f00:0:100::"),
            ("ipv4-compatible-hex", "::7f00:1"),
            ("ipv4-compatible-dotted", "::127.0.0.1"),
            ("ipv4-translated", "::ffff:0:7f00:1"),
            ("6to4-private", "2002:a00:1::1"),
            ("teredo-loopback-client", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
        ]
    ),
    (
        "job-webhook-localhost",
        post(json={"prompt": "x", "webhook_url": "http://localhost:8080/"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-file",
        post(json={"prompt": "x", "webhook_url": "file:///etc/passwd"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-gopher",
        post(json={"prompt": "x", "webhook_url": "gopher://example.com/"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-credentials",
        post(json={"prompt": "x", "webhook_url": "https://u:p@example.com/"}, path="/image/jobs"),
        422,
    ),
    (
        "job-webhook-huge",
        post(json={"prompt": "x", "webhook_url": "https://example.com/" + "a" * 3000}, path="/image/jobs"),
        422,
    ),
    ("job-webhook-number", post(json={"prompt": "x", "webhook_url": 42}, path="/image/jobs"), 422),
    (
        "job-idempotency-key-duplicated",
        post(
            json={"prompt": "x"},
            headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
            path="/image/jobs",
        ),
        422,
    ),
    ("job-id-traversal", get("/image/jobs/..%2F..%2Fpixyproxy-data%2Fpixyproxy.db"), 404),
    ("job-id-10kb", get("/image/jobs/" + "a" * 10_240), 404),
    ("job-id-sql", get("/image/jobs/1'%20OR%20'1'='1"), 404),
    ("job-id-unknown", get(f"/image/jobs/{GUID}"), 404),
    ("job-events-unknown", get(f"/image/jobs/{GUID}/events"), 404),
    ("job-events-10kb", get("/image/jobs/" + "e" * 10_240 + "/events"), 404),
    ("job-cancel-unknown", get(f"/image/jobs/{GUID}", method="DELETE"), 404),
    ("job-cancel-traversal", get("/image/jobs/..%2F..", method="DELETE"), 404),
    ("job-list-status-bogus", get("/image/jobs?status=bogus"), 422),
    ("job-list-status-sql", get("/image/jobs?status=queued'%20OR%201=1"), 422),
    ("job-list-limit-zero", get("/image/jobs?limit=0"), 422),
    ("job-list-limit-huge", get("/image/jobs?limit=" + "9" * 400), 422),
    ("job-list-cursor-garbage", get("/image/jobs?cursor=%25%25%25"), 422),
    ("job-list-cursor-naive-time", get(f"/image/jobs?cursor={b64('2026-01-01T00:00:00|5')}"), 422),
    ("job-method-put", get("/image/jobs", method="PUT"), 405),
    # The gallery: its page and listed assets only (nothing else of its folder), GET and HEAD only.
    ("gallery-post", post(json={"prompt": "x"}, path="/"), 405),
    ("gallery-delete", get("/", method="DELETE"), 405),
    ("gallery-asset-post", post(b"x", JSON, path="/gallery/gallery.js"), 405),
    ("gallery-asset-unlisted", get("/gallery/__init__.py"), 404),
    ("gallery-asset-page-file", get("/gallery/index.html"), 404),
    ("gallery-asset-traversal", get("/gallery/..%2F..%2Fsettings.py"), 404),
    ("gallery-asset-dots", get("/gallery/%2e%2e/%2e%2e/pixyproxy-data/pixyproxy.db"), 404),
    ("gallery-asset-10kb", get("/gallery/" + "g" * 10_240), 404),
    ("gallery-asset-nul", get("/gallery/gallery.js%00.png"), 404),
    # Edits: the source guid in the path, mask and references in the body.
    ("edits-unknown-guid", post(json={"prompt": "x"}, path=f"/image/{GUID}/edits"), 404),
    ("edits-guid-traversal", post(json={"prompt": "x"}, path="/image/..%2F..%2Fetc%2Fpasswd/edits"), 404),
    ("edits-guid-10kb", post(json={"prompt": "x"}, path="/image/" + "a" * 10_240 + "/edits"), 404),
    ("edits-guid-sql", post(json={"prompt": "x"}, path="/image/1'%20OR%20'1'='1/edits"), 404),
    ("edits-json-truncated", post(b'{"prompt": "x"', JSON, path=f"/image/{GUID}/edits"), 422),
    ("edits-json-array", post(b'[{"prompt": "x"}]', JSON, path=f"/image/{GUID}/edits"), 422),
    ("edits-prompt-missing", post(json={"mask_guid": GUID}, path=f"/image/{GUID}/edits"), 422),
    ("edits-prompt-nul", post(json={"prompt": "a\x00b"}, path=f"/image/{GUID}/edits"), 422),
    (
        "edits-mask-traversal",
        post(json={"prompt": "x", "mask_guid": "../../etc/passwd"}, path=f"/image/{GUID}/edits"),
        422,
    ),
    (
        "edits-mask-sql",
        post(json={"prompt": "x", "mask_guid": "1' OR '1'='1"}, path=f"/image/{GUID}/edits"),
        422,
    ),
    (
        "edits-mask-object",
        post(json={"prompt": "x", "mask_guid": {"$ne": ""}}, path=f"/image/{GUID}/edits"),
        422,
    ),
    (
        "edits-references-not-a-list",
        post(json={"prompt": "x", "reference_guids": GUID}, path=f"/image/{GUID}/edits"),
        422,
    ),
    (
        "edits-references-16",
        post(json={"prompt": "x", "reference_guids": [GUID] * 16}, path=f"/image/{GUID}/edits"),
        422,
    ),
    (
        "edits-references-nested",
        post(json={"prompt": "x", "reference_guids": [[GUID]]}, path=f"/image/{GUID}/edits"),
        422,
    ),
    ("edits-moderation", post(json={"prompt": "x", "moderation": "low"}, path=f"/image/{GUID}/edits"), 422),
    ("edits-n-several", post(json={"prompt": "x", "n": 2}, path=f"/image/{GUID}/edits"), 422),
    (
        "edits-idempotency-key-duplicated",
        post(
            json={"prompt": "x"},
            headers=[("Idempotency-Key", "one"), ("Idempotency-Key", "two")],
            path=f"/image/{GUID}/edits",
        ),
        422,
    ),
    (
        "edits-idempotency-key-10kb",
        post(json={"prompt": "x"}, headers={"Idempotency-Key": "k" * 10_240}, path=f"/image/{GUID}/edits"),
        422,
    ),
    ("edits-over-body-limit", post(json={"prompt": "x" * 1_100_000}, path=f"/image/{GUID}/edits"), 413),
    ("edits-method-get", get(f"/image/{GUID}/edits"), 405),
    # Delete: only a stored image's guid names anything to delete.
    ("delete-unknown-uuid", get(f"/image/{GUID}", method="DELETE"), 404),
    ("delete-traversal", get("/image/..%2F..%2Fpixyproxy-data%2Fpixyproxy.db", method="DELETE"), 404),
    ("delete-10kb", get("/image/" + "a" * 10_240, method="DELETE"), 404),
    ("delete-sql", get("/image/1'%20OR%20'1'='1", method="DELETE"), 404),
    ("delete-content", get(f"/image/{GUID}/content", method="DELETE"), 405),
    # Search and filters on the list.
    ("q-empty", get("/image/?q="), 422),
    ("q-no-word", get("/image/?q=%21%40%23%20%2A"), 422),
    ("q-only-short-words", get("/image/?q=a%20of%20x"), 422),
    ("q-too-long", get("/image/?q=" + "word%20" * 60), 422),
    ("q-too-many-words", get("/image/?q=" + "%20".join(f"word{i}" for i in range(9))), 422),
    ("q-10kb", get("/image/?q=" + "q" * 10_240), 422),
    ("created-after-date-only", get("/image/?created_after=2026-11-24"), 422),
    ("created-after-no-zone", get("/image/?created_after=2026-11-24T12:00:00"), 422),
    ("created-after-epoch", get("/image/?created_after=1700000000"), 422),
    ("created-before-not-a-day", get("/image/?created_before=2026-02-30T00:00:00Z"), 422),
    ("created-before-sql", get("/image/?created_before=2026-01-01'%20OR%20'1'='1"), 422),
    ("created-after-10kb", get("/image/?created_after=" + "9" * 10_240), 422),
    ("model-empty", get("/image/?model="), 422),
    ("model-10kb", get("/image/?model=" + "m" * 10_240), 422),
    ("model-nul", get("/image/?model=a%00b"), 422),
    # Variants of an image that does not exist: a 404 before the query is looked at.
    ("variant-unknown-image", get(f"/image/{GUID}/content?width=256&format=webp"), 404),
    ("variant-url-unknown-image", get(f"/image/{GUID}/url?width=abc"), 404),
    # Methods the API does not have.
    ("method-delete", get("/image/", method="DELETE"), 405),
    ("method-put-detail", get(f"/image/{GUID}", method="PUT"), 405),
    ("method-patch", get("/image/", method="PATCH"), 405),
    # The OpenAI-compatible face: JSON generations, multipart edits, models. Errors in OpenAI's shape.
    ("v1-json-truncated", post(b'{"prompt": "x"', JSON, path=V1_GEN), 400),
    ("v1-json-array", post(b'[{"prompt": "x"}]', JSON, path=V1_GEN), 400),
    ("v1-not-json", post(b"prompt=x", {"Content-Type": "text/plain"}, path=V1_GEN), 400),
    ("v1-prompt-missing", post(json={"n": 1}, path=V1_GEN), 400),
    ("v1-prompt-nul", post(json={"prompt": "a\x00b"}, path=V1_GEN), 400),
    ("v1-prompt-over-limit", post(json={"prompt": "x" * 4001}, path=V1_GEN), 400),
    ("v1-prompt-over-body-limit", post(json={"prompt": "x" * 1_100_000}, path=V1_GEN), 400),
    ("v1-n-zero", post(json={"prompt": "x", "n": 0}, path=V1_GEN), 400),
    ("v1-n-eleven", post(json={"prompt": "x", "n": 11}, path=V1_GEN), 400),
    ("v1-n-string", post(json={"prompt": "x", "n": "3"}, path=V1_GEN), 400),
    ("v1-n-huge", post(json={"prompt": "x", "n": 10**30}, path=V1_GEN), 400),
    ("v1-response-format-bad", post(json={"prompt": "x", "response_format": "file"}, path=V1_GEN), 400),
    ("v1-stream-not-bool", post(json={"prompt": "x", "stream": "yes"}, path=V1_GEN), 400),
    ("v1-stream-several", post(json={"prompt": "x", "stream": True, "n": 2}, path=V1_GEN), 400),
    ("v1-partial-images-4", post(json={"prompt": "x", "partial_images": 4}, path=V1_GEN), 400),
    ("v1-size-sql", post(json={"prompt": "x", "size": "1x1'; --"}, path=V1_GEN), 400),
    ("v1-model-traversal", post(json={"prompt": "x", "model": "../../etc/passwd"}, path=V1_GEN), 400),
    ("v1-user-object", post(json={"prompt": "x", "user": {"$ne": ""}}, path=V1_GEN), 400),
    ("v1-edit-json", post(json={"prompt": "x"}, path=V1_EDIT), 400),
    ("v1-edit-no-boundary", post(b"x", {"Content-Type": "multipart/form-data"}, path=V1_EDIT), 400),
    ("v1-edit-garbage-parts", post(b"--b\r\n\r\nx\r\n--b--", MULTIPART, path=V1_EDIT), 400),
    ("v1-edit-no-image", form([("prompt", None, b"x")]), 400),
    ("v1-edit-no-prompt", form([("image", "a.png", TINY_PNG)]), 400),
    ("v1-edit-image-as-text", form([("prompt", None, b"x"), ("image", None, b"not a file")]), 400),
    ("v1-edit-not-an-image", form([("prompt", None, b"x"), ("image", "a.png", b"<svg/>")]), 400),
    ("v1-edit-cut-short", form([("prompt", None, b"x"), ("image", "a.png", TINY_PNG[:40])]), 400),
    ("v1-edit-pixel-bomb", form([("prompt", None, b"x"), ("image", "a.png", PIXEL_BOMB)]), 400),
    (
        "v1-edit-short-png-data",  # a header of 4096x4096 and 100 bytes of rows: refused, never decoded
        form([("prompt", None, b"x"), ("image", "a.png", SHORT_BOMB)]),
        400,
    ),
    (
        "v1-edit-over-the-pixel-budget",  # 16 images and a mask claiming 4096x4096 each, in 2 KB
        form(
            [("prompt", None, b"x"), *[("image[]", "a.png", SHORT_BOMB)] * 16, ("mask", "m.png", SHORT_BOMB)]
        ),
        400,
    ),
    ("v1-edit-17-images", form([("prompt", None, b"x"), *[("image[]", "a.png", TINY_PNG)] * 17]), 400),
    ("v1-edit-30-files", form([("prompt", None, b"x"), *[("image[]", "a.png", TINY_PNG)] * 30]), 400),
    (
        "v1-edit-mask-jpeg",
        form([("prompt", None, b"x"), ("image", "a.png", TINY_PNG), ("mask", "m.jpg", TINY_JPEG)]),
        400,
    ),
    (
        "v1-edit-two-masks",
        form([("prompt", None, b"x"), ("image", "a.png", TINY_PNG), *[("mask", "m.png", TINY_PNG)] * 2]),
        400,
    ),
    (
        "v1-edit-prompt-twice",
        form([("prompt", None, b"x"), ("prompt", None, b"y"), ("image", "a", TINY_PNG)]),
        400,
    ),
    ("v1-edit-n-text", form([("prompt", None, b"x"), ("n", None, b"three"), ("image", "a", TINY_PNG)]), 400),
    ("v1-edit-prompt-nul", form([("prompt", None, b"a\x00b"), ("image", "a", TINY_PNG)]), 400),
    ("v1-models-post", post(json={}, path="/v1/models"), 405),
    ("v1-model-unknown", get("/v1/models/dall-e-3"), 404),
    ("v1-model-10kb", get("/v1/models/" + "m" * 10_240), 404),
    ("v1-unknown-route", post(json={"prompt": "x"}, path="/v1/images/variations"), 404),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # With a webhook secret, so the webhook rows are refused by the URL checks, not for want of one.
    with run_server(tmp_path_factory.mktemp("hostile"), {"PIXYPROXY_WEBHOOK_SECRET": SECRET}) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        # One image already stored, so "unchanged" is a real comparison.
        assert http.post("/image/", json={"prompt": "the one image before the hostile table"}).is_success
        yield http


def files_under(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) for p in root.rglob("*") if p.suffix not in (".log", ".db-wal", ".db-shm")
    }


def snapshot(client, workdir: Path):
    listed = client.get("/image/", params={"limit": 1000})
    jobs = client.get("/image/jobs", params={"limit": 1000})
    assert listed.status_code == 200 and jobs.status_code == 200
    return listed.json(), jobs.json(), files_under(workdir)


def assert_json_error(response, status):
    assert response.status_code == status, (
        response.request.method,
        str(response.request.url)[:200],
        response.text,
    )
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    if response.request.method == "HEAD":
        return
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if response.request.url.path.startswith("/v1/"):  # the OpenAI-compatible face: OpenAI's shape
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"], body
        assert "Traceback" not in body["error"]["message"]
        return
    assert set(body) == {"detail", "code", "request_id"}, body
    assert all(isinstance(body[k], str) and body[k] for k in body)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in body["detail"] and "sqlite" not in body["detail"].lower()


@pytest.mark.parametrize(("request_kwargs", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_request_is_a_json_4xx_and_changes_nothing(server, client, request_kwargs, status):
    workdir = server.log_path.parent
    before = snapshot(client, workdir)
    kwargs = {k: v for k, v in request_kwargs.items() if v is not None}
    response = client.request(**kwargs)
    assert_json_error(response, status)
    if status == 405:
        assert response.headers["allow"]  # names what the path does serve
    assert snapshot(client, workdir) == before


@pytest.mark.parametrize(
    "query",
    [
        "width=100",
        "width=abc",
        "width=" + "9" * 400,
        "width=256.0",
        "width=-256",
        "width=256&width=100",
        "format=gif",
        "format=..%2F..%2Fetc%2Fpasswd",
        "format=png%00",
        "format=" + "f" * 10_240,
        "width=64&format=WEBP",
    ],
)
@pytest.mark.parametrize("path", ["content", "url"])
def test_hostile_variant_query_is_a_422_and_makes_nothing(server, client, path, query):
    guid = client.get("/image/", params={"limit": 1}).json()[-1]["guid"]
    before = snapshot(client, server.log_path.parent)
    assert_json_error(client.get(f"/image/{guid}/{path}?{query}"), 422)
    assert snapshot(client, server.log_path.parent) == before


def test_405_names_every_method_the_path_serves(client):
    response = client.delete("/image/")
    assert_json_error(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}
    response = client.post(f"/image/{GUID}/content")
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD"}


@pytest.mark.parametrize(
    "prompt",
    [
        "'); DROP TABLE images; --",
        "1' OR '1'='1",
        "Robert'); DELETE FROM images WHERE ('1'='1",
        '<script>alert("x")</script><img src=x onerror=alert(1)>',
        "{{7*7}} ${7*7} %s%s%n",
        "../../../../etc/passwd",
    ],
)
def test_sql_and_html_in_a_prompt_are_stored_as_plain_text(server, client, prompt):
    """Such prompts are valid text, so they are drawn and stored verbatim; nothing else changes."""
    before, _, files = snapshot(client, server.log_path.parent)
    created = client.post("/image/", json={"prompt": prompt})
    assert created.status_code == 200, created.text
    detail = created.json()
    assert detail["prompt"] == prompt
    assert detail["filename"] == f"{detail['guid']}.png"  # never derived from the prompt
    after, _, files_after = snapshot(client, server.log_path.parent)
    assert after == [detail, *before]  # the table is intact: one more row, the others untouched
    assert files_after - files == {f"pixyproxy-data/images/{detail['filename']}"}
    assert client.get(f"/image/{detail['guid']}").json()["prompt"] == prompt


def raw_request(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


PARSER_REFUSALS = {
    "content-length-conflicting": b"POST /image/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\nContent-Length: 3\r\n\r\n{"prompt":"ab"}',
    "content-length-not-a-number": b"POST /image/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "content-length-negative": b"POST /image/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "content-length-huge": b"POST /image/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n",
    "chunked-and-length": b"GET /image/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 3\r\n\r\n0\r\n",
    "unknown-method": b"BREW /image/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-path": b"GET /image/\x00/content HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw-non-ascii-in-path": "GET /image/caf\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "space-in-header-name": b"GET /image/ HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "nul-in-header-value": b"GET /image/ HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("data", list(PARSER_REFUSALS.values()), ids=list(PARSER_REFUSALS))
def test_requests_the_http_parser_refuses_are_json_400s_and_change_nothing(server, client, data):
    """The HTTP parser refuses these before the app sees them: a 400 in the one JSON shape, then close."""
    before = snapshot(client, server.log_path.parent)
    answer = raw_request(server.base_url, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-content-type-options"] == b"nosniff"
    shaped = json.loads(body)
    assert set(shaped) == {"detail", "code", "request_id"} and shaped["code"] == "bad_request"
    assert shaped["request_id"].encode() == headers[b"x-request-id"]
    assert snapshot(client, server.log_path.parent) == before
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Accept": "text/html"},
        {"Range": "bytes=0-99"},
        {"Range": "bytes=0-0,5-9,-3"},  # multiple ranges: served whole
        {"Range": "bytes=" + "9" * 400 + "-"},
        {"Range": "bytes=" + "9" * 5000 + "-"},  # beyond Python's int() digit limit: a 416, not a 500
        {"Range": "bytes=-" + "9" * 5000},
        {"Range": "bytes=0-" + "9" * 5000},
        {"If-Range": '"not-the-etag"', "Range": "bytes=0-9"},
    ],
    ids=[
        "plain",
        "accept-html",
        "range",
        "multi-range",
        "huge-range",
        "range-5000-digit-start",
        "range-5000-digit-suffix",
        "range-5000-digit-end",
        "if-range-mismatch",
    ],
)
def test_content_always_carries_nosniff(client, headers):
    guid = client.get("/image/", params={"limit": 1}).json()[0]["guid"]
    response = client.get(f"/image/{guid}/content", headers=headers)
    assert response.headers["x-content-type-options"] == "nosniff", response.status_code
    if response.status_code in (200, 206):
        assert response.headers["content-type"] == "image/png"
    else:
        assert_json_error(response, 416)
    head = client.head(f"/image/{guid}/content", headers=headers)
    assert head.headers["x-content-type-options"] == "nosniff"
    etag = response.headers.get("etag")
    if etag:
        cached = client.get(f"/image/{guid}/content", headers={"If-None-Match": etag})
        assert cached.status_code == 304 and cached.headers["x-content-type-options"] == "nosniff"


def test_the_whole_table_logs_nothing_above_warning_and_no_traceback(server, client):
    """A client's mistake is not the service's error: the log says WARNING at most, never a traceback."""
    start = len(server.log_text())
    for _, request_kwargs, status in CASES:
        kwargs = {k: v for k, v in request_kwargs.items() if v is not None}
        assert client.request(**kwargs).status_code == status
    # Too large by its declared length alone, the case that once logged an ERROR with a traceback.
    refused = raw_request(
        server.base_url,
        b"POST /image/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000\r\nConnection: close\r\n\r\n{}",
    )
    assert refused.startswith(b"HTTP/1.1 413 "), refused[:200]
    assert client.get("/healthz").status_code == 200  # the END line of the last case is written by now
    written = server.log_text()[start:]
    assert "REQUEST END" in written
    worse = [line for line in written.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert worse == [] and "Traceback" not in written, "\n".join(worse) or written[-3000:]


def other_spellings(guid: str) -> dict[str, str]:
    """Ways Python's UUID() would read `guid`, none of them the one the API gives out."""
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in guid)
    return {
        "braces": "{" + guid + "}",
        "urn": "urn:uuid:" + guid,
        "dashless": guid.replace("-", ""),
        "full-width-digits": full_width,
        "braces-encoded": "%7B" + guid + "%7D",
        "trailing-newline": guid + "%0A",
    }


@pytest.mark.parametrize("spelling", list(other_spellings(GUID)))
def test_a_stored_guid_has_one_spelling_every_other_is_a_404(server, client, spelling):
    guid = client.get("/image/", params={"limit": 1}).json()[0]["guid"]
    job = client.post("/image/jobs", json={"prompt": "a job with one spelling"}).json()["id"]
    with client.stream("GET", f"/image/jobs/{job}/events") as events:  # ends when the job does
        assert events.status_code == 200
        for _ in events.iter_lines():
            pass
    other, other_job = other_spellings(guid)[spelling], other_spellings(job)[spelling]
    before = snapshot(client, server.log_path.parent)
    for method, path in [
        ("GET", f"/image/{other}"),
        ("GET", f"/image/{other}/content"),
        ("HEAD", f"/image/{other}/content"),
        ("GET", f"/image/{other}/url"),
        ("DELETE", f"/image/{other}"),
        ("GET", f"/image/jobs/{other_job}"),
        ("GET", f"/image/jobs/{other_job}/events"),
    ]:
        assert_json_error(client.request(method, path), 404)
    edit = client.post(f"/image/{other}/edits", json={"prompt": "x"})
    assert_json_error(edit, 404)
    for body in ({"prompt": "x", "mask_guid": other}, {"prompt": "x", "reference_guids": [other]}):
        if "%" not in other:  # a body carries the text as it is, not URL-encoded
            assert_json_error(client.post(f"/image/{guid}/edits", json=body), 422)
    assert snapshot(client, server.log_path.parent) == before
    assert client.get(f"/image/{guid.upper()}").status_code == 200  # hex digits in either case (RFC 9562)


# The MCP endpoint: each row is one message in an initialized session. Malformed JSON-RPC, an unknown
# method or tool and an oversized body get the protocol's error; a bad argument is a tool result with
# isError. None of them changes anything or logs above WARNING.
PROTOCOL, TOOL_ERROR = "protocol", "tool"


def _call(tool: str, arguments) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return json.dumps(message).encode()


def _rpc(method: str, params=None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 8, "method": method, "params": params or {}}).encode()


MCP_CASES = [
    ("mcp-not-json", b"{not json", 400, -32700),
    ("mcp-truncated", b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"', 400, -32700),
    (
        "mcp-nested-deep",
        b'{"jsonrpc": "2.0", "id": 1, "params": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
        -32700,
    ),
    ("mcp-batch-array", b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]', 400, -32602),
    ("mcp-number", b"12", 400, -32602),
    ("mcp-null", b"null", 400, -32602),
    ("mcp-no-jsonrpc", b'{"id": 1, "method": "tools/list"}', 400, -32602),
    ("mcp-params-string", b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"}', 400, -32602),
    ("mcp-id-huge", b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "tools/list"}', 400, -32700),
    ("mcp-unknown-method", _rpc("tools/bogus"), 200, -32601),
    ("mcp-unknown-tool", _call("rm_rf", {}), 200, -32602),
    ("mcp-tool-name-10kb", _call("t" * 10_240, {}), 200, -32602),
    ("mcp-arguments-list", _call("get_image", [1, 2]), 200, -32602),
    ("mcp-over-body-limit", _call("generate_image", {"prompt": "x" * 1_100_000}), 413, -32600),
    ("mcp-read-file-uri", _rpc("resources/read", {"uri": "file:///etc/passwd"}), 200, -32002),
    (
        "mcp-read-traversal",
        _rpc("resources/read", {"uri": "image://../../pixyproxy-data/pixyproxy.db"}),
        200,
        -32002,
    ),
    ("mcp-read-unknown", _rpc("resources/read", {"uri": f"image://{GUID}"}), 200, -32002),
    ("mcp-read-preview-unknown", _rpc("resources/read", {"uri": f"preview://{GUID}/0"}), 200, -32002),
    (
        "mcp-read-preview-index-huge",
        _rpc("resources/read", {"uri": f"preview://{GUID}/" + "9" * 5000}),
        200,
        -32002,
    ),
    (
        "mcp-read-preview-traversal",
        _rpc("resources/read", {"uri": "preview://../../etc/passwd"}),
        200,
        -32002,
    ),
    ("mcp-list-cursor-garbage", _rpc("resources/list", {"cursor": "%%%"}), 200, -32602),
    ("mcp-prompt-empty", _call("generate_image", {"prompt": ""}), 200, TOOL_ERROR),
    ("mcp-prompt-nul", _call("generate_image", {"prompt": "a\x00b"}), 200, TOOL_ERROR),
    ("mcp-prompt-over-limit", _call("generate_image", {"prompt": "x" * 4001}), 200, TOOL_ERROR),
    ("mcp-prompt-object", _call("generate_image", {"prompt": {"$ne": ""}}), 200, TOOL_ERROR),
    ("mcp-size-sql", _call("generate_image", {"prompt": "x", "size": "1x1'; --"}), 200, TOOL_ERROR),
    ("mcp-unknown-argument", _call("generate_image", {"prompt": "x", "n": 5}), 200, TOOL_ERROR),
    (
        "mcp-partial-without-progress",
        _call("generate_image", {"prompt": "x", "partial_images": 2}),
        200,
        TOOL_ERROR,
    ),
    ("mcp-guid-traversal", _call("get_image", {"guid": "../../etc/passwd"}), 200, TOOL_ERROR),
    ("mcp-guid-number", _call("delete_image", {"guid": 5}), 200, TOOL_ERROR),
    ("mcp-delete-unknown", _call("delete_image", {"guid": GUID}), 200, TOOL_ERROR),
    ("mcp-edit-unknown", _call("edit_image", {"guid": GUID, "prompt": "x"}), 200, TOOL_ERROR),
    (
        "mcp-edit-mask-sql",
        _call("edit_image", {"guid": GUID, "prompt": "x", "mask_guid": "1' OR '1'='1"}),
        200,
        TOOL_ERROR,
    ),
    ("mcp-search-limit-huge", _call("search_images", {"limit": 10**30}), 200, TOOL_ERROR),
    ("mcp-search-q-10kb", _call("search_images", {"q": "q" * 10_240}), 200, TOOL_ERROR),
    ("mcp-search-after-epoch", _call("search_images", {"created_after": "1700000000"}), 200, TOOL_ERROR),
    ("mcp-usage-since-sql", _call("get_usage", {"since": "2026-01-01' OR '1'='1"}), 200, TOOL_ERROR),
]


@pytest.fixture(scope="module")
def mcp_headers(server):
    """The headers of an initialized MCP session."""
    answer = httpx.post(f"{server.base_url}/mcp", json=OPENING, headers=MCP_ACCEPT, timeout=30)
    assert answer.status_code == 200, answer.text
    headers = {
        **MCP_ACCEPT,
        "Mcp-Session-Id": answer.headers["mcp-session-id"],
        "MCP-Protocol-Version": "2025-06-18",
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(f"{server.base_url}/mcp", json=initialized, headers=headers).status_code == 202
    return headers


def mcp_answer(response: httpx.Response) -> dict:
    """The one JSON-RPC message an answer carries (a JSON body or an SSE stream's data line)."""
    if response.headers["content-type"].startswith("text/event-stream"):
        (data,) = [
            line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
        ]
        return json.loads(data)
    return response.json()


@pytest.mark.parametrize(
    ("body", "status", "expected"), [c[1:] for c in MCP_CASES], ids=[c[0] for c in MCP_CASES]
)
def test_hostile_mcp_message_gets_the_protocols_error_and_changes_nothing(
    server, client, mcp_headers, body, status, expected
):
    workdir = server.log_path.parent
    before = snapshot(client, workdir)
    start = len(server.log_text())
    response = client.post("/mcp", content=body, headers=mcp_headers)
    assert response.status_code == status, response.text[:300]
    answer = mcp_answer(response)
    assert answer["jsonrpc"] == "2.0"
    if expected == TOOL_ERROR:
        result = answer["result"]
        assert result["isError"] is True and result["content"][0]["type"] == "text"
        assert result["content"][0]["text"] and "Traceback" not in result["content"][0]["text"]
    else:
        assert answer["error"]["code"] == expected, answer
        assert "Traceback" not in answer["error"]["message"]
    assert snapshot(client, workdir) == before
    assert client.get("/healthz").status_code == 200  # the END line is written by now
    written = server.log_text()[start:]
    worse = [line for line in written.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert worse == [] and "Traceback" not in written, "\n".join(worse) or written[-3000:]

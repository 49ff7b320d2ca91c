"""The gallery: `GET /` and its few static assets, read once at import and answered from memory.

Each asset's URL carries a hash of its bytes (`/gallery/gallery.js?v=...`), so it is cached as immutable
while the page itself is revalidated (`no-cache` with a strong ETag, a 304 when unchanged): a new release is
seen at once, and a repeat visit costs one small conditional request. Gzip is applied once, here, for
clients that take it. What the API offers (keys or not, which routes and filters) is read from the app's
own OpenAPI document on the first request and put in the page; the page reads everything else through the
API itself.
"""

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response

from pixyproxy.entrypoints.content import IMMUTABLE, etag_matches
from pixyproxy.entrypoints.gallery import ASSET_PREFIX, ASSETS, FOLDER, PAGE_FILE, PAGE_PATH
from pixyproxy.entrypoints.routes.direct import DirectRoute

router = APIRouter(tags=["gallery"])
REVALIDATE = "no-cache"
OFFER_SLOT = "{{offer}}"  # where the page gets what the API offers (a JSON data block, not a script)
# The page loads only its own files and talks only to this service; images may be blobs (fetched with
# the key) or data: URLs (streamed previews).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str  # strong: a hash of the bytes
    version: str  # the `v` its URL carries

    @classmethod
    def of(cls, body: bytes, media_type: str) -> "StaticFile":
        digest = hashlib.sha256(body).hexdigest()
        return cls(body, gzip.compress(body, 9, mtime=0), media_type, f'"{digest}"', digest[:16])

    def answer(self, request: Request, cache_control: str, extra: list[tuple[bytes, bytes]]) -> Response:
        headers = [
            (b"etag", self.etag.encode()),
            (b"cache-control", cache_control.encode()),
            (b"vary", b"accept-encoding"),
            *_SECURITY,
            *extra,
        ]
        if etag_matches(request.headers.get("if-none-match"), self.etag):
            response = Response(status_code=304)
            response.raw_headers = headers
            return response
        body = self.body
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = self.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers += [(b"content-type", self.media_type.encode()), (b"content-length", str(len(body)).encode())]
        response = Response(body if request.method != "HEAD" else b"")
        response.raw_headers = headers  # exactly these (the HEAD answer keeps the real length)
        return response


def _load() -> tuple[str, dict[str, StaticFile]]:
    assets = {name: StaticFile.of((FOLDER / name).read_bytes(), media) for name, media in ASSETS.items()}
    page = (FOLDER / PAGE_FILE).read_text(encoding="utf-8")
    for name, asset in assets.items():
        page = page.replace("{{" + name + "}}", f"{ASSET_PREFIX}{name}?v={asset.version}")
    if "{{" in page.replace(OFFER_SLOT, ""):
        raise RuntimeError(f"{PAGE_FILE} links to an asset not listed in ASSETS")
    return page, assets


def api_offer(schema: dict[str, Any]) -> dict[str, Any]:
    """What the page may use, read from the service's own OpenAPI document (built from its routes): keys
    or not, and which routes and list filters exist. The page leaves out what is not offered instead of
    trying it and showing errors."""
    paths = schema.get("paths", {})

    def operation(path: str, method: str) -> dict | None:
        return (paths.get(path) or paths.get(path.rstrip("/")) or {}).get(method)

    def parameters(path: str, method: str) -> set[str]:
        return {p.get("name") for p in (operation(path, method) or {}).get("parameters", [])}

    listing = parameters("/image/", "get")
    security = (operation("/image/", "get") or {}).get("security")
    return {
        "keys": bool(security),
        "jobs": operation("/image/jobs", "post") is not None,
        "events": any(re.fullmatch(r"/image/jobs/\{[^}/]+\}/events/?", p) for p in paths),
        "variants": "width" in parameters("/image/{guid}/content", "get"),
        "remove": operation("/image/{guid}", "delete") is not None,
        "edits": operation("/image/{guid}/edits", "post") is not None,
        "search": "q" in listing,
        "model": "model" in listing,
        "createdAfter": "created_after" in listing,
        "parentFilter": next((name for name in ("parent_guid", "parent") if name in listing), None),
    }


def page_for(app) -> StaticFile:
    """The page with the offer in it, made once per app on its first request."""
    page = getattr(app.state, "gallery_page", None)
    if page is None:
        offer = json.dumps(api_offer(app.openapi()), separators=(",", ":")).replace("<", "\\u003c")
        page = StaticFile.of(PAGE_TEMPLATE.replace(OFFER_SLOT, offer).encode(), "text/html; charset=utf-8")
        app.state.gallery_page = page
    return page


PAGE_TEMPLATE, ASSET_FILES = _load()
_PAGE_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]


async def gallery_page(request: Request) -> Response:
    return page_for(request.app).answer(request, REVALIDATE, _PAGE_HEADERS)


# One route per method, so each operation has its own operationId.
for _method in ("GET", "HEAD"):
    router.add_api_route(
        PAGE_PATH,
        gallery_page,
        methods=[_method],
        name=f"gallery_page_{_method.lower()}",
        response_class=Response,
        summary="The gallery: browse, search, generate, edit and delete images in a web page",
        description="A static page (HTML, CSS, JavaScript) that uses this API from the browser. With API "
        "keys on it asks for one and sends it as a Bearer token; the page itself is open.",
        responses={
            200: {"content": {"text/html": {}}, "description": "The gallery page."},
            304: {"description": "Not modified (If-None-Match matched the ETag)."},
        },
        route_class_override=DirectRoute,
    )


def _asset_endpoint(asset: StaticFile):
    async def gallery_asset(request: Request) -> Response:
        # Immutable only under the URL the page links to; any other `v` is revalidated.
        fresh = request.query_params.get("v") == asset.version
        return asset.answer(request, IMMUTABLE if fresh else REVALIDATE, [])

    return gallery_asset


for _name, _asset in ASSET_FILES.items():
    router.add_api_route(
        ASSET_PREFIX + _name,
        _asset_endpoint(_asset),
        methods=["GET", "HEAD"],
        include_in_schema=False,
        name=f"gallery_asset_{_name}",
        route_class_override=DirectRoute,
    )

"""The gallery's files over HTTP (in process): what GET / and its assets answer, how they are cached, that
they stay open with keys on while the API does not, and that the page needs nothing from outside."""

import gzip
import json
import re

import pytest
from starlette.testclient import TestClient

from pixyproxy.entrypoints.gallery import ASSETS, FOLDER, PAGE_FILE
from pixyproxy.entrypoints.routes.gallery import api_offer
from tests.support.embedded import in_process_app

KEY = "gallery-http-key-0e5b"


@pytest.fixture
def client(tmp_path):
    with TestClient(in_process_app(tmp_path)) as running:
        yield running


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/gallery/[^"]+)"', page)


def offer_in(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="api-offer">(.*?)</script>', page, re.S)
    assert match, page[:500]
    return json.loads(match.group(1))


def test_the_page_is_html_revalidated_with_a_strong_etag(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{64}"', page.headers["etag"])
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-request-id"]
    assert "<title>PixyProxy gallery</title>" in page.text
    again = client.get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/", headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == page.headers["content-length"]


def test_assets_are_immutable_under_the_urls_the_page_links_to(client):
    page = client.get("/").text
    urls = asset_urls(page)
    assert {url.split("?")[0].removeprefix("/gallery/") for url in urls} == set(ASSETS)
    for url in urls:
        answer = client.get(url)
        name = url.split("?")[0].removeprefix("/gallery/")
        assert answer.status_code == 200, url
        assert answer.headers["content-type"] == ASSETS[name]
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.content == (FOLDER / name).read_bytes()
        assert client.get(url, headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
        # Another version's URL is not promised to stay: it is revalidated instead.
        stale = client.get(url.split("?")[0] + "?v=0000")
        assert stale.headers["cache-control"] == "no-cache" and stale.content == answer.content


def test_gzip_for_clients_that_take_it(client):
    url = next(u for u in asset_urls(client.get("/").text) if "gallery.js" in u)
    raw = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    # httpx decodes gzip itself; ask through the transport for the bytes as sent.
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as sent:
        assert sent.headers["content-encoding"] == "gzip"
        assert sent.headers["vary"] == "accept-encoding"
        body = b"".join(sent.iter_raw())
    assert gzip.decompress(body) == raw.content and len(body) < len(raw.content) / 2


def test_nothing_else_is_served_from_the_folder(client):
    for path in [
        "/gallery/",
        "/gallery/__init__.py",
        f"/gallery/{PAGE_FILE}",
        "/gallery/..%2F..%2Fsettings.py",
        "/gallery/gallery.js/",
        "/index.html",
    ]:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["code"], path


def test_the_page_needs_nothing_from_outside():
    """No CDN, no web font, no remote script: every URL in the files is the service's own."""
    for name in [PAGE_FILE, *ASSETS]:
        text = (FOLDER / name).read_text()
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        outside = [url for url in urls if "www.w3.org/2000/svg" not in url]  # the SVG namespace, not a fetch
        assert outside == [], (name, outside)


def test_the_page_says_what_the_api_offers(client):
    offer = offer_in(client.get("/").text)
    assert offer == api_offer(client.app.openapi())
    assert offer["keys"] is False and offer["edits"] is True
    # Derived from the routes: an API without jobs or search makes a page that does not try them.
    assert api_offer({"paths": {"/image/": {"get": {"parameters": [{"name": "limit"}]}}}}) == {
        "keys": False,
        "jobs": False,
        "events": False,
        "variants": False,
        "remove": False,
        "edits": False,
        "search": False,
        "model": False,
        "createdAfter": False,
        "parentFilter": None,
    }


def test_with_keys_on_the_page_is_open_the_api_is_not_and_the_page_knows(tmp_path):
    with TestClient(in_process_app(tmp_path, api_keys=KEY)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert offer_in(page.text)["keys"] is True
        for url in asset_urls(page.text):
            assert client.get(url).status_code == 200, url
        assert client.get("/image/").status_code == 401
        assert client.get("/image/", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        operation = client.get("/openapi.json").json()["paths"]["/"]["get"]
        assert operation["security"] == []

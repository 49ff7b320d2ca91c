"""The agreed API over real HTTP against `pixyproxy serve` on the embedded default."""

import hashlib
import io
import re
import time
from uuid import UUID

import httpx
import pytest
from PIL import Image

from tests.e2e.server import run_server

DETAIL_FIELDS = {
    "guid", "prompt", "filename", "created_at", "content_type", "size_bytes", "width", "height", "model",
}  # fmt: skip
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("api")) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False) as http:
        yield http


def create(client, prompt="a lighthouse at dusk", path="/image/"):
    response = client.post(path, json={"prompt": prompt})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"detail", "code", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code:
        assert body["code"] == code
    assert "Traceback" not in response.text
    return body


def test_post_returns_the_detail_and_get_returns_identical_values(client):
    detail = create(client, "  a lighthouse at dusk  ")
    assert set(detail) >= DETAIL_FIELDS
    assert detail["prompt"] == "a lighthouse at dusk"
    assert detail["filename"] == f"{UUID(detail['guid'])}.png"
    assert detail["content_type"] == "image/png"
    assert ISO_UTC.match(detail["created_at"])
    assert detail["width"] >= 512 and detail["height"] >= 512
    assert detail["model"] == "pixyproxy-offline"
    assert client.get(f"/image/{detail['guid']}").json() == detail


def test_list_is_a_plain_array_newest_first(client):
    first, second = create(client, "first of two"), create(client, "second of two")
    listed = client.get("/image/")
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    guids = [d["guid"] for d in listed.json()]
    assert guids.index(second["guid"]) < guids.index(first["guid"])
    assert second in listed.json()


def test_list_pages_follow_the_link_header(client):
    made = {create(client, f"page item {i}")["guid"] for i in range(5)}
    seen, url, pages = [], "/image/?limit=2", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert len(response.json()) <= 2
        seen += [d["guid"] for d in response.json()]
        pages += 1
        url = response.links.get("next", {}).get("url")
        if url:
            assert re.match(r'^<http://127\.0\.0\.1:\d+/image/\?limit=2&cursor=[\w-]+>; rel="next"$',
                            response.headers["link"])  # fmt: skip
    assert made <= set(seen) and len(seen) == len(set(seen)) and pages >= 3


def test_last_page_has_no_link(client):
    response = client.get("/image/?limit=1000")
    assert "link" not in response.headers


def test_content_is_the_png_with_caching_headers(client):
    detail = create(client, "content check")
    response = client.get(f"/image/{detail['guid']}/content")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert int(response.headers["content-length"]) == len(response.content) == detail["size_bytes"]
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["etag"] == f'"{digest}"'
    assert "immutable" in response.headers["cache-control"]
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG" and image.size == (detail["width"], detail["height"])


def test_if_none_match_gives_304_and_head_gives_headers_only(client):
    detail = create(client, "etag check")
    url = f"/image/{detail['guid']}/content"
    etag = client.get(url).headers["etag"]
    not_modified = client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(detail["size_bytes"])
    assert head.headers["etag"] == etag and head.headers["content-type"] == "image/png"


def test_byte_ranges(client):
    detail = create(client, "range check")
    url = f"/image/{detail['guid']}/content"
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    assert client.get(url, headers={"Range": "bytes=-10"}).content == whole[-10:]
    assert_error(client.get(url, headers={"Range": f"bytes={len(whole)}-"}), 416, "range_not_satisfiable")
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == whole


def test_every_path_works_with_and_without_trailing_slash(client):
    detail = create(client, "slash check", path="/image")
    guid = detail["guid"]
    for path in ("/image", "/image/", f"/image/{guid}", f"/image/{guid}/", f"/image/{guid}/content",
                 f"/image/{guid}/content/", f"/image/{guid}/url", f"/image/{guid}/url/"):  # fmt: skip
        assert client.get(path).status_code == 200, path
    assert client.post("/image/", json={"prompt": "with slash"}).status_code == 200


def test_url_endpoint_points_at_the_content_on_the_file_store(client):
    detail = create(client, "url check")
    body = client.get(f"/image/{detail['guid']}/url").json()
    assert body["expires_at"] is None
    assert httpx.get(body["url"]).content == client.get(f"/image/{detail['guid']}/content").content


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"metadata": "ok", "storage": "ok", "generator": "ok"}


def test_docs_describe_every_endpoint_and_its_errors(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/image/", "/image/{guid}", "/image/{guid}/content", "/image/{guid}/url", "/healthz",
            "/readyz"} <= set(paths)  # fmt: skip
    assert {"200", "422", "502", "503", "504"} <= set(paths["/image/"]["post"]["responses"])
    assert "404" in paths["/image/{guid}"]["get"]["responses"]
    assert "ErrorModel" in spec["components"]["schemas"]
    assert "ImageDetail" in spec["components"]["schemas"]


@pytest.mark.parametrize(
    "path",
    ["/image/not-a-uuid", "/image/00000000-0000-0000-0000-000000000000", "/image/..%2F..%2Fetc%2Fpasswd"],
)
def test_unknown_or_malformed_guid_is_404_json(client, path):
    # An encoded traversal decodes to a path no route matches: still a plain 404, never a file lookup.
    assert_error(client.get(path), 404)
    assert_error(client.get(path + "/content"), 404)


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/image/"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422),
        ({"json": {}}, 422),
        ({"json": {"prompt": ""}}, 422),
        ({"json": {"prompt": "   "}}, 422),
        ({"json": {"prompt": "x" * 4001}}, 422),
        ({"json": {"prompt": "escape \x1b[31m"}}, 422),
        ({"json": {"prompt": ["a list"]}}, 422),
        ({"json": ["not", "an", "object"]}, 422),
        ({"content": b"prompt=hi", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 422),
        ({"json": {"prompt": "y" * 1_100_000}}, 413),
    ],
)
def test_bad_input_is_a_json_error_and_changes_nothing(client, kwargs, status):
    before = client.get("/image/?limit=1000").json()
    assert_error(client.post("/image/", **kwargs), status)
    assert client.get("/image/?limit=1000").json() == before


def test_chunked_body_over_the_limit_is_413(client):
    def body():
        for _ in range(20):
            yield b"x" * 100_000

    response = client.post("/image/", content=body(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "cursor=%%%", "cursor=" + "A" * 300])
def test_bad_list_parameters_are_422(client, query):
    assert_error(client.get(f"/image/?{query}"), 422)


def test_request_ids_are_unique_and_every_request_logs_start_and_end(server, client):
    responses = [client.get("/healthz"), client.get("/image/nope"), client.get("/missing"),
                 client.post("/image/", json={})]  # fmt: skip
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    line = re.compile(
        r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) (INFO|WARNING|ERROR|DEBUG) (\S+) \[(\d+)\] "
        r"\[(\w+):(\d+)\] (REQUEST START|REQUEST END)(.*)$"
    )

    def events() -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for text in server.log_text().splitlines():
            match = line.match(text)
            if match:
                seen.setdefault(match.group(3), []).append(match.group(7))
        return seen

    # END is written once the response has gone out, so the last line may land a moment after it. The log is
    # another process's file, with no event to wait on: polled with a deadline.
    deadline = time.monotonic() + 5
    logged = events()
    while any(len(logged.get(i, [])) < 2 for i in ids) and time.monotonic() < deadline:
        time.sleep(0.02)
        logged = events()
    for request_id in ids:
        # host-time-process-thread-n: the process too, so workers of `serve --workers N` never collide
        assert re.match(rf"^[\w.-]+-\d{{20}}-{server.process.pid}-\d+-\d+$", request_id)
        assert logged.get(request_id) == ["REQUEST START", "REQUEST END"], request_id

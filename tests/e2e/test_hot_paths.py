"""The hot paths (entrypoints/hot_paths.py) answer exactly as the FastAPI routes they stand in for.

Two apps on one container with real SQLite and file stores: one as built, one with the hot path removed,
so every request below is answered once by each; status, headers (but X-Request-ID) and body must match.
"""

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from pixyproxy.container import Container
from pixyproxy.entrypoints import hot_paths
from pixyproxy.entrypoints.app import create_app
from pixyproxy.entrypoints.hot_paths import HotPathMiddleware
from pixyproxy.settings import Settings

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def clients(tmp_path):
    container = Container()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", storage_url=f"file:{tmp_path / 'b'}"
    )
    container.settings.override(providers.Object(settings))
    hot = create_app(container)
    plain = create_app(container)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not HotPathMiddleware]
    assert len(plain.user_middleware) == len(hot.user_middleware) - 1
    with TestClient(hot) as hot_client, TestClient(plain) as plain_client:
        yield hot_client, plain_client
    container.unwire()


@pytest.fixture
def image(clients):
    response = clients[0].post("/image/", json={"prompt": "a lighthouse at dusk"})
    assert response.status_code == 200
    return response.json()


def same(clients, method: str, path: str, headers: dict | None = None):
    hot, plain = (c.request(method, path, headers=headers or {}) for c in clients)
    assert hot.status_code == plain.status_code, path
    # An error body holds its own request id (and so its length may differ): compare the rest.
    error = hot.headers.get("content-type") == "application/json" and hot.status_code >= 400
    if error:
        for response in (hot, plain):
            assert response.json().pop("request_id") == response.headers["x-request-id"]
        assert {**hot.json(), "request_id": ""} == {**plain.json(), "request_id": ""}, path
    else:
        assert hot.content == plain.content, path
    ignored = {"x-request-id", "content-length"} if error else {"x-request-id"}

    def comparable(response):
        return sorted((k, v) for k, v in response.headers.multi_items() if k not in ignored)

    assert comparable(hot) == comparable(plain), path
    return hot


@pytest.mark.parametrize("suffix", ["", "/"])
def test_details_match(clients, image, suffix):
    response = same(clients, "GET", f"/image/{image['guid']}{suffix}")
    assert response.status_code == 200 and response.json() == image


@pytest.mark.parametrize("guid", [UNKNOWN, "not-a-guid", "x" * 80])
@pytest.mark.parametrize("suffix", ["", "/content"])
def test_unknown_images_match(clients, guid, suffix):
    response = same(clients, "GET", f"/image/{guid}{suffix}")
    assert response.status_code == 404 and response.json()["code"] == "image_not_found"


@pytest.mark.parametrize(
    ("method", "suffix", "headers", "status"),
    [
        ("GET", "/content", {}, 200),
        ("GET", "/content/", {}, 200),
        ("HEAD", "/content", {}, 200),
        ("GET", "/content", {"Range": "bytes=0-99"}, 206),
        ("GET", "/content", {"Range": "bytes=-10"}, 206),
        ("HEAD", "/content", {"Range": "bytes=5-"}, 206),
        ("GET", "/content", {"Range": "bytes=999999999-"}, 416),
        ("GET", "/content", {"Range": "bytes=0-9", "If-Range": '"other"'}, 200),
        ("GET", "/content", {"If-None-Match": "*"}, 304),
    ],
)
def test_content_matches(clients, image, method, suffix, headers, status):
    response = same(clients, method, f"/image/{image['guid']}{suffix}", headers)
    assert response.status_code == status


def test_matching_etag_is_304_on_both(clients, image):
    etag = clients[1].get(f"/image/{image['guid']}/content").headers["etag"]
    assert same(clients, "GET", f"/image/{image['guid']}/content", {"If-None-Match": etag}).status_code == 304


def test_large_blobs_stream_the_same_bytes(clients, image, monkeypatch):
    monkeypatch.setattr(hot_paths, "ONE_BODY", 1000)  # this image is larger: the chunked path
    response = same(clients, "GET", f"/image/{image['guid']}/content")
    assert len(response.content) == image["size_bytes"] > 1000


async def test_only_the_hot_reads_skip_the_app():
    """Everything but GET /image/{guid} and GET|HEAD /image/{guid}/content reaches the app."""
    reached = []

    async def app(scope, receive, send):
        reached.append((scope["method"], scope["path"]))

    class Service:
        async def get(self, guid):
            from pixyproxy.domain.errors import ImageNotFound

            raise ImageNotFound()

    sent = []

    async def send(message):
        sent.append(message)

    middleware = HotPathMiddleware(app, service=Service)
    passed = [("POST", "/image/"), ("GET", "/image/"), ("GET", "/image/x/url"), ("HEAD", "/image/x"),
              ("GET", "/image//content"), ("GET", "/image/x/content/more"), ("DELETE", "/image/x"),
              ("GET", "/healthz"), ("GET", "/image/x//")]  # fmt: skip
    taken = [
        ("GET", "/image/x"),
        ("GET", "/image/x/"),
        ("GET", "/image/x/content"),
        ("HEAD", "/image/x/content/"),
    ]
    for method, path in passed + taken:
        scope = {"type": "http", "method": method, "path": path, "headers": [], "root_path": ""}
        await middleware(scope, None, send)
    assert reached == passed
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [404] * len(taken)


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/image/x", "/image/{guid}"),
        ("GET", "/image/x/", "/image/{guid}/"),
        ("GET", "/image/x/content", "/image/{guid}/content"),
        ("HEAD", "/image/x/content/", "/image/{guid}/content/"),
    ],
)
async def test_the_scope_names_the_route_as_the_router_would(clients, method, path, template):
    """Middleware outside (metrics labels) reads scope["route"] after the call, as after routing."""

    class Service:
        async def get(self, guid):
            from pixyproxy.domain.errors import ImageNotFound

            raise ImageNotFound()

    async def send(message):
        pass

    middleware = HotPathMiddleware(None, service=Service)
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "root_path": "",
        "app": clients[0].app,
    }
    await middleware(scope, None, send)
    assert scope["route"].path == template and method in scope["route"].methods
    assert scope["path_params"] == {"guid": "x"}

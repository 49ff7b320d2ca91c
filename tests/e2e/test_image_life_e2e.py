"""Images have a life, over real HTTP against `pixyproxy serve` on the embedded default: variants
(width, format, ETag, 304, HEAD, Range, Accept negotiation, url), delete, search and filters with paging,
and `pixyproxy gc` with a retention."""

import hashlib
import io
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.e2e.server import run_server

PILLOW = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "avif": "AVIF"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("life")) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def create(client, prompt="a lighthouse at dusk", **options):
    response = client.post("/image/", json={"prompt": prompt, "size": "1024x768", **options})
    assert response.status_code == 200, response.text
    return response.json()


def images_folder(server):
    return server.log_path.parent / "pixyproxy-data" / "images"


@pytest.mark.parametrize("fmt", list(PILLOW))
@pytest.mark.parametrize("width", [64, 128, 256, 512, 1024])
def test_every_width_and_format_is_served_decodable_at_the_right_size(client, width, fmt):
    image = create(client, f"a variant {width} {fmt}")
    response = client.get(f"/image/{image['guid']}/content", params={"width": width, "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    with Image.open(io.BytesIO(response.content)) as decoded:
        decoded.load()
        assert decoded.format == PILLOW[fmt]
        expected = min(width, 1024)
        assert decoded.size == (expected, round(768 * expected / 1024))


def test_a_variant_is_served_like_the_original(client, server):
    image = create(client)
    url = f"/image/{image['guid']}/content?width=256&format=webp"
    first = client.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == f'"{hashlib.sha256(first.content).hexdigest()}"' != f'"{image["sha256"]}"'
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first.headers["accept-ranges"] == "bytes"
    assert first.headers["content-length"] == str(len(first.content))
    assert "vary" not in first.headers  # asked by name, not negotiated
    again = client.get(url)
    assert again.content == first.content and again.headers["etag"] == etag
    cached = client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    part = client.get(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == first.content[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(first.content)}"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == first.content[-5:]
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == first.content
    beyond = client.get(url, headers={"Range": f"bytes={len(first.content)}-"})
    assert beyond.status_code == 416
    # Kept beside the original, under a name that starts with the image's guid.
    names = sorted(p.name for p in images_folder(server).iterdir() if p.name.startswith(image["guid"]))
    assert names == sorted([image["filename"], f"{image['guid']}.w256.webp"])


def test_a_width_at_or_above_the_original_serves_the_original(client):
    image = create(client, "small", size="256x256")
    plain = client.get(f"/image/{image['guid']}/content")
    for query in ({"width": 256}, {"width": 1024}, {"format": "png"}, {"width": 512, "format": "png"}):
        same = client.get(f"/image/{image['guid']}/content", params=query)
        assert same.status_code == 200 and same.content == plain.content, query
        assert same.headers["etag"] == f'"{image["sha256"]}"'


@pytest.mark.parametrize(
    "query",
    ["width=100", "width=abc", "width=", "width=-64", "width=256.0", "format=gif", "format=", "format=PNG"],
)
def test_bad_variant_values_are_422_and_make_nothing(client, server, query):
    image = create(client, f"bad {query}")
    before = sorted(p.name for p in images_folder(server).iterdir())
    for path in ("content", "url"):
        response = client.get(f"/image/{image['guid']}/{path}?{query}")
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        assert body["code"] in ("invalid_request", "validation_error") and body["detail"]
    assert sorted(p.name for p in images_folder(server).iterdir()) == before


def test_url_takes_width_and_format(client):
    image = create(client)
    answer = client.get(f"/image/{image['guid']}/url", params={"width": 128, "format": "jpeg"})
    assert answer.status_code == 200
    url = answer.json()["url"]
    assert parse_qs(urlsplit(url).query) == {"width": ["128"], "format": ["jpeg"]}
    served = client.get(url)
    with Image.open(io.BytesIO(served.content)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (128, 96)


def test_delete_removes_everything_and_a_second_delete_is_404(client, server):
    image = create(client, "to be deleted")
    guid = image["guid"]
    assert client.get(f"/image/{guid}/content?width=64&format=avif").status_code == 200
    assert client.get(f"/image/{guid}/content?format=webp").status_code == 200
    assert len([p for p in images_folder(server).iterdir() if p.name.startswith(guid)]) == 3

    deleted = client.delete(f"/image/{guid}")
    assert deleted.status_code == 204 and deleted.content == b""
    for path in ("", "/content", "/content?width=64&format=avif", "/url", "/url?width=64"):
        gone = client.get(f"/image/{guid}{path}")
        assert gone.status_code == 404 and gone.json()["code"] == "image_not_found", path
    assert not [p for p in images_folder(server).iterdir() if p.name.startswith(guid)]
    assert guid not in [d["guid"] for d in client.get("/image/", params={"limit": 1000}).json()]
    again = client.delete(f"/image/{guid}")
    assert again.status_code == 404 and again.json()["code"] == "image_not_found"
    assert client.delete(f"/image/{guid}/").status_code == 404  # the twin path answers too


def test_search_and_filters_page_through_with_the_link_header(client):
    marker = "zqxmarker"  # a word no other test's prompt has
    made = [
        create(client, f"{marker} harbour number{i} {'stormy' if i % 3 == 0 else 'calm'}") for i in range(7)
    ]
    newest_first = list(reversed(made))

    def follow(params):
        seen, url, links = [], "/image/", []
        response = client.get(url, params=params)
        while True:
            assert response.status_code == 200, response.text
            seen += response.json()
            link = response.headers.get("link")
            if not link:
                return seen, links
            links.append(link)
            response = client.get(link.split(";")[0].strip("<>"))

    everything, links = follow({"q": marker, "limit": 2})
    assert [d["guid"] for d in everything] == [d["guid"] for d in newest_first]
    assert len(links) == 3 and all(f"q={marker}" in link for link in links)

    stormy, _ = follow({"q": f"STORMY {marker}", "limit": 1})
    assert [d["guid"] for d in stormy] == [d["guid"] for d in newest_first if "stormy" in d["prompt"]]

    after, before = made[1]["created_at"], made[5]["created_at"]
    params = {"q": marker, "created_after": after, "created_before": before, "limit": 1}
    window, links = follow(params)
    assert [d["guid"] for d in window] == [d["guid"] for d in reversed(made[2:5])]
    assert all("created_after=" in link and "created_before=" in link for link in links)

    model = made[0]["model"]
    by_model, _ = follow({"q": marker, "model": model, "limit": 3})
    assert len(by_model) == 7
    assert follow({"q": marker, "model": "no-such-model"})[0] == []
    assert follow({"q": "zqxnothing"})[0] == []


@pytest.mark.parametrize(
    "query",
    [
        "q=",
        "q=%21%21%21",
        "q=ab",
        "q=" + "x" * 201,
        "q=one%20two%20three%20four%20five%20six%20seven%20eight%20nine",
        "created_after=2026-01-01",
        "created_after=2026-01-01T00:00:00",
        "created_after=1700000000",
        "created_after=2026-13-01T00:00:00Z",
        "created_before=yesterday",
        "created_before=2026-02-30T00:00:00Z",
        "model=",
        "model=" + "m" * 101,
    ],
)
def test_bad_filter_values_are_422(client, query):
    response = client.get(f"/image/?{query}")
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"detail", "code", "request_id"}


def test_rfc3339_offsets_and_fractions_are_understood(client):
    image = create(client, "a timed one")
    created = datetime.fromisoformat(image["created_at"])
    just_before = (created - timedelta(microseconds=1)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    shifted = (created + timedelta(microseconds=1)).astimezone(
        __import__("datetime").timezone(timedelta(hours=-5))
    )
    listed = client.get(
        "/image/", params={"created_after": just_before, "created_before": shifted.isoformat()}
    )
    assert [d["guid"] for d in listed.json()] == [image["guid"]]


def test_negotiation_picks_avif_then_webp_and_says_vary(tmp_path):
    with (
        run_server(tmp_path, {"PIXYPROXY_NEGOTIATE_FORMAT": "true"}) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        image = create(client)
        url = f"/image/{image['guid']}/content"
        cases = [
            ("image/avif,image/webp,*/*", "image/avif"),
            ("image/webp,*/*", "image/webp"),
            ("image/png", "image/png"),
            (None, "image/png"),
        ]
        for accept, expected in cases:
            headers = {"Accept": accept} if accept else {}
            response = client.get(url, headers=headers)
            assert response.status_code == 200 and response.headers["content-type"] == expected, accept
            assert response.headers["vary"].lower() == "accept"
            small = client.get(url, params={"width": 64}, headers=headers)
            assert small.headers["content-type"] == expected and small.headers["vary"].lower() == "accept"
        named = client.get(url, params={"format": "jpeg"}, headers={"Accept": "image/avif"})
        assert named.headers["content-type"] == "image/jpeg" and "vary" not in named.headers


def test_gc_deletes_images_past_retention(tmp_path):
    with run_server(tmp_path) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        old = create(client, "old")
        assert client.get(f"/image/{old['guid']}/content?width=64").status_code == 200
        young = create(client, "young")
    # Move the old image's clock back 40 days, in the store itself.
    database = tmp_path / "pixyproxy-data" / "pixyproxy.db"
    stamp = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="microseconds")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE images SET created_at = ? WHERE guid = ?", (stamp, old["guid"]))
    env = {"PIXYPROXY_RETENTION_DAYS": "30", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted 1 image(s) past retention" in done.stdout
    with sqlite3.connect(database) as db:
        guids = {row[0] for row in db.execute("SELECT guid FROM images")}
    assert guids == {young["guid"]}
    names = {p.name for p in (tmp_path / "pixyproxy-data" / "images").iterdir()}
    assert names == {young["filename"]}


def test_with_keys_on_delete_needs_a_key(tmp_path):
    key = "life-e2e-key-7c21"
    with (
        run_server(tmp_path, {"PIXYPROXY_API_KEYS": key}) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        auth = {"Authorization": f"Bearer {key}"}
        made = client.post("/image/", json={"prompt": "keyed"}, headers=auth).json()
        refused = client.delete(f"/image/{made['guid']}")
        assert refused.status_code == 401 and refused.json()["code"]
        wrong = client.delete(f"/image/{made['guid']}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert client.get(f"/image/{made['guid']}", headers=auth).status_code == 200
        assert client.delete(f"/image/{made['guid']}", headers=auth).status_code == 204
        assert client.get(f"/image/{made['guid']}", headers=auth).status_code == 404

"""The agreed API over real HTTP against `pixyproxy serve` storing its images in S3 (MinIO or moto).

moto does not check signatures, so against moto these tests prove the presigned URL's shape, host and
bytes; that MinIO accepts the signature (and refuses it under another host name) is only checked when
the tests run against MinIO (a Docker engine present).
"""

import hashlib
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from PIL import Image

from tests.e2e.server import run_server
from tests.support.s3 import empty_and_remove_bucket

pytestmark = pytest.mark.s3

PREFIX = "pngs"
URL_TTL_SECONDS = 600


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    name = f"pixyproxy-e2e-{uuid4().hex[:16]}"
    yield name
    empty_and_remove_bucket(s3_endpoint, name)


@pytest.fixture(scope="module")
def public_endpoint(s3_endpoint) -> str:
    # The same server under another host name, as a proxy in front of MinIO would be.
    return s3_endpoint.alias_url()


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_endpoint, bucket, public_endpoint):
    env = {
        **s3_endpoint.env(),
        "PIXYPROXY_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
        "PIXYPROXY_S3_PUBLIC_ENDPOINT_URL": public_endpoint,
        "PIXYPROXY_URL_TTL_SECONDS": str(URL_TTL_SECONDS),
    }
    with run_server(tmp_path_factory.mktemp("s3e2e"), env) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False) as http:
        yield http


@pytest.fixture(scope="module")
def image(server):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        response = http.post("/image/", json={"prompt": "a lighthouse at dusk, stored in S3"})
    assert response.status_code == 200, response.text
    return response.json()


def content_path(image) -> str:
    return f"/image/{image['guid']}/content"


def test_the_service_starts_on_s3_and_is_ready(client, server, bucket):
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["storage"] == "ok"
    assert "storage=s3" in server.log_text()


def test_details_and_list_come_back(client, image):
    assert client.get(f"/image/{image['guid']}").json() == image
    assert image["guid"] in [d["guid"] for d in client.get("/image/").json()]


def test_content_is_the_stored_png(client, image):
    response = client.get(content_path(image))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{image["sha256"]}"'
    assert int(response.headers["content-length"]) == image["size_bytes"] == len(response.content)
    assert hashlib.sha256(response.content).hexdigest() == image["sha256"]
    with Image.open(io.BytesIO(response.content)) as png:
        assert png.format == "PNG" and png.size == (image["width"], image["height"])


def test_range_requests_get_206_and_the_slice(client, image):
    whole = client.get(content_path(image)).content
    size = len(whole)
    for header, start, end in (
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-50", size - 50, size - 1),
    ):
        response = client.get(content_path(image), headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert response.content == whole[start : end + 1]
        assert response.headers["content-type"] == "image/png"
    assert client.get(content_path(image), headers={"Range": f"bytes={size}-"}).status_code == 416


def test_head_has_the_headers_and_no_body(client, image):
    response = client.head(content_path(image))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(image["size_bytes"])
    assert response.headers["etag"] == f'"{image["sha256"]}"'
    assert response.headers["content-type"] == "image/png"


def test_a_matching_etag_gets_304(client, image):
    response = client.get(content_path(image), headers={"If-None-Match": f'"{image["sha256"]}"'})
    assert response.status_code == 304
    assert response.content == b""
    other = client.get(content_path(image), headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_unknown_image_content_is_404(client):
    response = client.get(f"/image/{uuid4()}/content")
    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"


def test_the_presigned_url_serves_the_same_bytes(client, image, public_endpoint, s3_endpoint):
    before = datetime.now(UTC)
    response = client.get(f"/image/{image['guid']}/url")
    assert response.status_code == 200, response.text
    body = response.json()
    url = body["url"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == public_endpoint  # signed for the host clients reach
    assert parse_qs(parts.query)["X-Amz-Expires"] == [str(URL_TTL_SECONDS)]
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=URL_TTL_SECONDS - 5) <= expires_at
    assert expires_at <= datetime.now(UTC) + timedelta(seconds=URL_TTL_SECONDS + 5)

    direct = httpx.get(url, timeout=30)  # a plain client, no credentials, not through the service
    assert direct.status_code == 200
    assert direct.headers["content-type"] == "image/png"
    assert hashlib.sha256(direct.content).hexdigest() == image["sha256"]
    if s3_endpoint.verifies_signatures:
        assert httpx.get(url.replace(public_endpoint, s3_endpoint.url, 1), timeout=30).status_code == 403


def test_the_object_is_in_the_bucket_under_the_images_key(image, s3_endpoint, bucket):
    client = s3_endpoint.client()
    key = f"{PREFIX}/{image['guid']}.png"
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == image["size_bytes"]
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == image["sha256"]
    client.close()


def test_the_log_never_shows_the_s3_secret(client, image, server, s3_endpoint):
    client.get(f"/image/{image['guid']}/url")
    assert s3_endpoint.secret_key not in server.log_text()

"""deploy/nginx.conf.template's own answers, in the machine's nginx: a body over its limit and no replica
to pass a request to both get the API's JSON error shape, never nginx's HTML page."""

import shutil

import httpx
import pytest

from tests.e2e.server import free_port
from tests.e2e.test_scale_out_e2e import run_nginx
from tests.support.services import unavailable

LIMIT = 26 * 1024 * 1024  # client_max_body_size 26m


@pytest.fixture
def lb_without_replicas(tmp_path):
    if shutil.which("nginx") is None:
        unavailable("nginx (apt-get install nginx-light)")
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nothing listens there
    with run_nginx(tmp_path, closed) as base_url:
        yield base_url


def assert_error_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "code", "request_id"} and body["code"] == code
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]


def test_no_replica_is_a_json_502(lb_without_replicas):
    assert_error_shape(httpx.get(f"{lb_without_replicas}/image/", timeout=10), 502, "upstream_unavailable")


def test_a_body_over_the_limit_is_a_json_413_and_one_at_the_upload_limit_passes(lb_without_replicas):
    too_large = httpx.post(f"{lb_without_replicas}/v1/images/edits", content=b"x" * (LIMIT + 1), timeout=30)
    assert_error_shape(too_large, 413, "payload_too_large")
    # 25 MiB, the service's own upload limit, reaches the upstream (here: none, so 502, not 413).
    upload = httpx.post(f"{lb_without_replicas}/v1/images/edits", content=b"x" * 26_214_400, timeout=30)
    assert upload.status_code == 502

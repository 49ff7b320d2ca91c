"""/docs and /redoc load everything from the service itself: nothing from a CDN or any other host."""

import re

import pytest
from fastapi.testclient import TestClient

from tests.support.embedded import in_process_app

LOADED = re.compile(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.fixture
def client(tmp_path):
    with TestClient(in_process_app(tmp_path, api_keys="ducky:user:key-for-ducky")) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_what_the_service_serves_without_a_key(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert "//" not in re.sub(r"<!--.*?-->", "", response.text).replace("http://testserver", "")
    loaded = {a or b for a, b in LOADED.findall(response.text)}
    assert {path for path in loaded if path.endswith(".js")}, loaded  # the test reads what the page loads
    for path in loaded:
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 1000, path
    assert client.get("/openapi.json").json()["info"]["title"] == "PixyProxy"

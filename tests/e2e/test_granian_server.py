"""`serve --server granian` (or PIXYPROXY_SERVER=granian) serves the agreed API exactly as uvicorn does:
answers, headers, the error shape and the two log lines per request."""

import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.server import run_server

START_OR_END = re.compile(r" INFO (\S+) \[\d+\] \[\w+:\d+\] REQUEST (START|END)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(
        tmp_path_factory.mktemp("granian"), env={"PIXYPROXY_SERVER": "granian"}, timeout=60
    ) as running:
        yield running


def test_the_agreed_api_under_granian(server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        created = http.post("/image/", json={"prompt": "a lighthouse under granian"})
        assert created.status_code == 200, created.text
        guid = created.json()["guid"]
        assert http.get(f"/image/{guid}").json()["prompt"] == "a lighthouse under granian"
        assert guid in [image["guid"] for image in http.get("/image/").json()]
        content = http.get(f"/image/{guid}/content")
        assert content.status_code == 200 and content.content.startswith(b"\x89PNG")
        assert int(content.headers["content-length"]) == len(content.content)
        etag = content.headers["etag"]
        assert http.get(f"/image/{guid}/content", headers={"If-None-Match": etag}).status_code == 304
        part = http.get(f"/image/{guid}/content", headers={"Range": "bytes=0-7"})
        assert part.status_code == 206 and part.content == content.content[:8]
        missing = http.get("/image/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404 and set(missing.json()) >= {"detail", "request_id"}
        refused = http.post("/image/", json={"prompt": ""})
        assert refused.status_code == 422 and "detail" in refused.json()
    # The END line is written after the answer is sent: poll the other process's log for it.
    deadline = time.monotonic() + 10
    while (lines := START_OR_END.findall(server.log_text()))[-1][1] != "END":
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)
    ids = {request_id for request_id, _ in lines}
    assert len(ids) >= 8
    for request_id in ids:
        assert [what for rid, what in lines if rid == request_id] == ["START", "END"]


def test_an_unknown_server_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "serve", "--server", "hypercorn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--server must be uvicorn or granian" in result.stderr and "hypercorn" in result.stderr

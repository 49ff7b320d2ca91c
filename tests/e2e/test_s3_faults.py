"""Faults with the service on S3: S3 going down, the metadata store failing after an upload, orphan gc."""

import hashlib
import os
import subprocess
import sys
import time
from uuid import uuid4

import httpx
import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from pixyproxy.container import Container
from pixyproxy.domain.errors import MetadataUnavailable
from pixyproxy.entrypoints.app import create_app
from tests.e2e.server import run_server
from tests.support.fakes import InMemoryImageRepository

pytestmark = pytest.mark.s3

PREFIX = "pngs"


def keys_in(s3_endpoint, bucket: str) -> list[str]:
    client = s3_endpoint.client()
    try:
        return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    finally:
        client.close()


def test_s3_down_at_store_time_answers_503_and_stores_no_row(tmp_path, s3_endpoint, s3_bucket, s3_relay):
    env = {
        **s3_endpoint.env(),
        "AWS_ENDPOINT_URL_S3": s3_relay.url,  # the service reaches S3 only through the relay
        "PIXYPROXY_STORAGE_URL": f"s3://{s3_bucket}/{PREFIX}",
    }
    with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        kept = http.post("/image/", json={"prompt": "stored while S3 was up"})
        assert kept.status_code == 200, kept.text

        s3_relay.stop()
        response = http.post("/image/", json={"prompt": "asked while S3 is down"})
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["code"] == "storage_unavailable"
        assert body["request_id"] == response.headers["x-request-id"]
        assert "Traceback" not in response.text

        assert [d["guid"] for d in http.get("/image/").json()] == [kept.json()["guid"]]  # no new row
        content = http.get(f"/image/{kept.json()['guid']}/content")
        assert content.status_code == 503 and content.json()["code"] == "storage_unavailable"
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["storage"] != "ok"
    assert keys_in(s3_endpoint, s3_bucket) == [f"{PREFIX}/{kept.json()['guid']}.png"]


def test_metadata_failing_after_the_upload_leaves_no_blob(s3_env, s3_bucket, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIXYPROXY_STORAGE_URL", f"s3://{s3_bucket}/{PREFIX}")
    repository = InMemoryImageRepository()
    container = Container()
    container.repository.override(providers.Object(repository))
    with TestClient(create_app(container), raise_server_exceptions=False) as http:
        # Versioning keeps a record of every write, so the test can see the upload did happen.
        s3_env.client().put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
        repository.fail_with = MetadataUnavailable("the metadata store went away")
        response = http.post("/image/", json={"prompt": "bytes stored, row refused"})
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "metadata_unavailable"

    assert keys_in(s3_env, s3_bucket) == []  # nothing left to serve or to leak
    versions = s3_env.client().list_object_versions(Bucket=s3_bucket, Prefix=f"{PREFIX}/")
    uploaded = [v["Key"] for v in versions.get("Versions", [])]
    deleted = [m["Key"] for m in versions.get("DeleteMarkers", [])]
    assert len(uploaded) == 1 and uploaded == deleted  # it was written, then removed
    assert repository.rows == []


def run_gc(workdir, env, grace_seconds: int) -> str:
    """`pixyproxy gc` as an operator runs it: same settings as the server, in its working directory."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))} | env
    done = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc", "--grace-seconds", str(grace_seconds)],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gc_removes_old_orphans_and_keeps_every_live_image(tmp_path, s3_endpoint, s3_bucket):
    env = {**s3_endpoint.env(), "PIXYPROXY_STORAGE_URL": f"s3://{s3_bucket}/{PREFIX}"}
    client = s3_endpoint.client()
    with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        live = [http.post("/image/", json={"prompt": f"live image {i}"}).json() for i in range(3)]
        orphan = f"{PREFIX}/{uuid4()}.png"  # as a crash between upload and row would leave
        foreign = [f"{PREFIX}/notes.txt", f"other/{uuid4()}.png", f"{PREFIX}/nested/{uuid4()}.png"]
        for key in [orphan, *foreign]:
            client.put_object(Bucket=s3_bucket, Key=key, Body=b"not an image of ours")

        assert "removed 0 orphan" in run_gc(tmp_path, env, grace_seconds=3600)  # too young to judge
        assert orphan in keys_in(s3_endpoint, s3_bucket)

        assert "removed 1 orphan" in run_gc(tmp_path, env, grace_seconds=0)
        remaining = keys_in(s3_endpoint, s3_bucket)
        assert orphan not in remaining
        assert set(remaining) == {f"{PREFIX}/{d['guid']}.png" for d in live} | set(foreign)
        for detail in live:  # every image a client was told of still serves its bytes
            content = http.get(f"/image/{detail['guid']}/content")
            assert content.status_code == 200
            assert hashlib.sha256(content.content).hexdigest() == detail["sha256"]
    client.close()


def test_a_hung_s3_answers_503_within_about_5_seconds(tmp_path, s3_endpoint, s3_bucket, s3_relay):
    """S3 accepts connections and never answers (bytes held in the relay): on the default timeouts every
    route that needs it answers 503 within about 5 s, /readyz too, as docs/s3.md says."""
    env = {
        **s3_endpoint.env(),
        "AWS_ENDPOINT_URL_S3": s3_relay.url,
        "PIXYPROXY_STORAGE_URL": f"s3://{s3_bucket}/{PREFIX}",
    }
    with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        kept = http.post("/image/", json={"prompt": "stored while S3 answered"})
        assert kept.status_code == 200, kept.text
        s3_relay.pause()
        try:
            for method, path, body in [
                ("POST", "/image/", {"prompt": "asked while S3 hangs"}),
                ("GET", f"/image/{kept.json()['guid']}/content", None),
                ("GET", "/readyz", None),
            ]:
                started = time.monotonic()
                answer = http.request(method, path, json=body)
                took = time.monotonic() - started
                assert answer.status_code == 503, (path, answer.text)
                assert took < 6.5, (path, took)  # 2 attempts x 2 s, a backoff under 1 s, and slack
        finally:
            s3_relay.resume()

"""The database stops answering exactly at an image's COMMIT (MySQL, a real server process): a relay
between the service and MariaDB (tests/support/tcp_relay.py) freezes the answer, cuts the connection
after a durable COMMIT, or holds the COMMIT itself and sends it later.

In every mode the COMMIT reaches the server, so the truth is "done": the service learns it (a locking
read of the row, which waits for the unanswered write) and answers it. Afterwards every listed image has
its bytes, no row lacks its bytes, no bytes lack a row once `pixyproxy gc` ran, and a retry with the same
Idempotency-Key answers the same image.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import RunningServer, run_server
from tests.e2e.test_jobs_e2e import FAST_JOBS, ended, submit, wait_for
from tests.support.mysql import MySQLServer
from tests.support.tcp_relay import CommitRelay, tcp_relay

IMAGES = "pixyproxy-data/images"
INSERT_IMAGE = r"INSERT INTO images \("
DELETE_IMAGE = r"DELETE FROM images WHERE"
# Longer than the read timeout, so the service gives up on the COMMIT's answer before the fault ends.
FAULT_SECONDS = 3.0
MODES = ["freeze", "cut", "hold"]


@pytest.fixture
def relay(mysql_server: MySQLServer) -> Iterator[CommitRelay]:
    with tcp_relay(mysql_server.host, mysql_server.port) as commit_relay:
        yield commit_relay


@pytest.fixture
def server(tmp_path, relay, mysql_server, mysql_database) -> Iterator[RunningServer]:
    through_relay = MySQLServer(mysql_server.host, relay.port, mysql_server.user, mysql_server.password)
    env = {
        **FAST_JOBS,
        "PIXYPROXY_DATABASE_URL": through_relay.url(mysql_database),
        "PIXYPROXY_MYSQL_READ_TIMEOUT_SECONDS": "1",
    }
    with run_server(tmp_path, env, timeout=90) as running:
        yield running


def rows(mysql_server: MySQLServer, database: str) -> set[str]:
    return {row[0] for row in mysql_server.query(database, "SELECT filename FROM images")}


def files(workdir: Path) -> set[str]:
    folder = workdir / IMAGES
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.exists() else set()


def gc(workdir: Path, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc", "--grace-seconds", "0"],
        cwd=workdir, env={**clean, **env}, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def assert_nothing_lost(server: RunningServer, workdir: Path, mysql_server, database: str) -> None:
    """Every listed image has its bytes; no row without bytes; after gc, no bytes without a row."""
    listed = httpx.get(f"{server.base_url}/image/", timeout=30).json()
    for image in listed:
        content = httpx.get(f"{server.base_url}/image/{image['guid']}/content", timeout=30)
        assert content.status_code == 200, (image["guid"], content.text)
    assert rows(mysql_server, database) <= files(workdir)
    gc(workdir, {"PIXYPROXY_DATABASE_URL": mysql_server.url(database)})
    assert rows(mysql_server, database) == files(workdir)


@pytest.mark.parametrize("mode", MODES)
def test_post_image_at_a_failed_commit_keeps_its_bytes_and_the_retry_answers_the_truth(
    tmp_path, relay, server, mysql_server, mysql_database, mode
):
    fault = relay.arm(INSERT_IMAGE, mode, FAULT_SECONDS)
    request = {"json": {"prompt": "a lighthouse at the commit"}, "headers": {"Idempotency-Key": "at-commit"}}
    first = httpx.post(f"{server.base_url}/image/", timeout=60, **request)
    assert fault.faulted.is_set()
    assert fault.settled.wait(30), "the held COMMIT never reached the server"
    # The COMMIT reached the server in every mode: the image is stored, and both answers say so.
    assert first.status_code == 200, first.text
    retry = httpx.post(f"{server.base_url}/image/", timeout=60, **request)
    assert retry.status_code == 200, retry.text
    guid = first.json()["guid"]
    assert retry.json()["guid"] == guid
    assert httpx.get(f"{server.base_url}/image/{guid}/content", timeout=30).status_code == 200
    assert [i["guid"] for i in httpx.get(f"{server.base_url}/image/", timeout=30).json()] == [guid]
    assert_nothing_lost(server, tmp_path, mysql_server, mysql_database)


@pytest.mark.parametrize("mode", MODES)
def test_a_job_with_several_images_at_a_failed_commit_lists_only_images_with_bytes(
    tmp_path, relay, server, mysql_server, mysql_database, mode
):
    fault = relay.arm(INSERT_IMAGE, mode, FAULT_SECONDS)
    submitted = submit(server, {"prompt": "three lighthouses", "n": 3})
    done = wait_for("the job to end", ended(server, submitted["id"]), timeout=60)
    assert fault.faulted.is_set() and fault.settled.wait(30)
    assert done["status"] == "succeeded" and len(done["images"]) == 3, done
    for image in done["images"]:
        content = httpx.get(f"{server.base_url}/image/{image['guid']}/content", timeout=30)
        assert content.status_code == 200
    assert_nothing_lost(server, tmp_path, mysql_server, mysql_database)


@pytest.mark.parametrize("mode", MODES)
def test_v1_generations_with_several_images_at_a_failed_commit(
    tmp_path, relay, server, mysql_server, mysql_database, mode
):
    fault = relay.arm(INSERT_IMAGE, mode, FAULT_SECONDS)
    answer = httpx.post(
        f"{server.base_url}/v1/images/generations", json={"prompt": "three boats", "n": 3}, timeout=60
    )
    assert fault.faulted.is_set() and fault.settled.wait(30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 3
    assert_nothing_lost(server, tmp_path, mysql_server, mysql_database)


@pytest.mark.parametrize("mode", MODES)
def test_delete_at_a_failed_commit_answers_the_truth_and_leaves_no_row_without_bytes(
    tmp_path, relay, server, mysql_server, mysql_database, mode
):
    made = httpx.post(f"{server.base_url}/image/", json={"prompt": "to be deleted"}, timeout=30)
    assert made.status_code == 200, made.text
    guid = made.json()["guid"]
    fault = relay.arm(DELETE_IMAGE, mode, FAULT_SECONDS)
    deleted = httpx.delete(f"{server.base_url}/image/{guid}", timeout=60)
    assert fault.faulted.is_set() and fault.settled.wait(30)
    # The COMMIT reached the server in every mode: the image is deleted, and every answer says so.
    assert deleted.status_code == 204, deleted.text
    assert httpx.get(f"{server.base_url}/image/{guid}", timeout=30).status_code == 404
    assert httpx.delete(f"{server.base_url}/image/{guid}", timeout=30).status_code == 404
    assert httpx.get(f"{server.base_url}/image/{guid}/content", timeout=30).status_code == 404
    assert_nothing_lost(server, tmp_path, mysql_server, mysql_database)

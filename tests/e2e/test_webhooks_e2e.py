"""Job webhooks against the real server in a subprocess and a real receiver on 127.0.0.1 that verifies
every signature with standardwebhooks.

- A job's end is POSTed once, signed, its data the job as GET answers it.
- A 500 is retried, with the same webhook-id, until a 2xx.
- SSRF: private, loopback and link-local URLs (and other schemes) are a 422 at submit, nothing stored;
  a delivery stored while they were allowed is refused at delivery once they are not.
- Deliveries survive a restart (SIGKILL too): the outbox row is sent by the next process.
"""

import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import RunningServer, free_port, run_server
from tests.support.webhook_receiver import SECRET, webhook_receiver

DB = "pixyproxy-data/pixyproxy.db"
WEBHOOKS = {
    "PIXYPROXY_WEBHOOK_SECRET": SECRET,
    "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "true",
    "PIXYPROXY_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "PIXYPROXY_WEBHOOK_POLL_SECONDS": "0.05",
    "PIXYPROXY_WEBHOOK_TIMEOUT_SECONDS": "2",
    "PIXYPROXY_WEBHOOK_LEASE_SECONDS": "5",
    "PIXYPROXY_JOB_POLL_SECONDS": "0.05",
}


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0):
    """Poll `check` until truthy: the server is another process, with no event this test could wait on."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def submit(server: RunningServer, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/image/jobs", json=body, timeout=10)


def delivery_row(workdir: Path) -> dict | None:
    with sqlite3.connect(workdir / DB) as db:
        db.row_factory = sqlite3.Row
        try:
            row = db.execute("SELECT * FROM webhook_deliveries").fetchone()
        except sqlite3.OperationalError:  # the table is made at the server's start
            return None
    return dict(row) if row else None


def test_a_finished_job_is_posted_once_signed_with_the_job(tmp_path) -> None:
    with webhook_receiver() as receiver, run_server(tmp_path, WEBHOOKS) as server:
        answer = submit(server, {"prompt": "a lighthouse at dusk", "n": 2, "webhook_url": receiver.url})
        assert answer.status_code == 202, answer.text
        (got,) = receiver.wait(1, timeout=30)
        job = httpx.get(f"{server.base_url}/image/jobs/{answer.json()['id']}", timeout=10).json()
    assert got.verified, got.headers
    assert got.payload["type"] == "image.job.succeeded"
    assert got.payload["data"] == job
    assert len(job["images"]) == 2 and job["status"] == "succeeded"
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert len(receiver.received) == 1


def test_a_500_is_retried_with_the_same_webhook_id(tmp_path) -> None:
    with webhook_receiver(script=[500, 502]) as receiver, run_server(tmp_path, WEBHOOKS) as server:
        answer = submit(server, {"prompt": "a fox in snow", "webhook_url": receiver.url})
        assert answer.status_code == 202, answer.text
        tries = receiver.wait(3, timeout=30)
        row = wait_for("the delivery to be marked delivered", lambda: _delivered(tmp_path))
    assert all(t.verified for t in tries)
    assert len({t.headers["webhook-id"] for t in tries}) == 1
    assert len({t.body for t in tries}) == 1
    assert (row["attempts"], row["last_status_code"]) == (3, 204)


def _delivered(workdir: Path) -> dict | None:
    row = delivery_row(workdir)
    return row if row and row["status"] == "delivered" else None


SSRF_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    # Other spellings of 127.0.0.1 that the system resolver accepts: refused by the address they reach.
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://127.1/hook",
    "ftp://hooks.example.com/hook",
    "file:///etc/passwd",
    "not a url",
]


def test_ssrf_urls_are_refused_at_submit_and_nothing_is_stored(tmp_path) -> None:
    env = {**WEBHOOKS, "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "false"}
    with run_server(tmp_path, env) as server:
        answers = {url: submit(server, {"prompt": "a fox", "webhook_url": url}) for url in SSRF_URLS}
        listed = httpx.get(f"{server.base_url}/image/jobs", timeout=10).json()
        log = server.log_text()
    for url, answer in answers.items():
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["code"] == "invalid_webhook_url", url
        assert answer.json()["detail"].startswith("webhook_url:"), url
    assert listed == []
    assert " ERROR " not in log and "Traceback" not in log


def test_without_a_secret_a_webhook_url_is_refused(tmp_path) -> None:
    env = {k: v for k, v in WEBHOOKS.items() if k != "PIXYPROXY_WEBHOOK_SECRET"}
    with run_server(tmp_path, env) as server:
        answer = submit(server, {"prompt": "a fox", "webhook_url": "https://hooks.example.com/in"})
        plain = submit(server, {"prompt": "a fox"})
    assert answer.status_code == 422 and "PIXYPROXY_WEBHOOK_SECRET" in answer.json()["detail"]
    assert plain.status_code == 202


def first_attempt_failed(workdir: Path) -> Callable[[], dict | None]:
    def check() -> dict | None:
        row = delivery_row(workdir)
        return row if row and row["attempts"] >= 1 else None

    return check


def test_deliveries_survive_a_restart_even_sigkill(tmp_path) -> None:
    port = free_port()  # the receiver is down for the first process: connections are refused
    url = f"http://127.0.0.1:{port}/hooks/pixyproxy"
    slow_retry = {**WEBHOOKS, "PIXYPROXY_WEBHOOK_RETRY_BASE_SECONDS": "1"}
    with run_server(tmp_path, slow_retry) as first:
        answer = submit(first, {"prompt": "a fox in snow", "webhook_url": url})
        assert answer.status_code == 202, answer.text
        pending = wait_for("a first, refused attempt", first_attempt_failed(tmp_path))
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    assert pending["status"] == "pending" and "ConnectError" in pending["last_error"]
    with webhook_receiver(port=port) as receiver, run_server(tmp_path, WEBHOOKS):
        (got,) = receiver.wait(1, timeout=30)
        row = wait_for("the delivery to be marked delivered", lambda: _delivered(tmp_path))
    assert got.verified
    assert got.headers["webhook-id"] == pending["delivery_id"]
    assert got.payload["data"]["id"] == answer.json()["id"]
    assert row["attempts"] >= 2


def test_a_private_target_is_refused_again_at_delivery(tmp_path) -> None:
    # Stored while private targets were allowed; the next process no longer allows them.
    port = free_port()
    slow_retry = {**WEBHOOKS, "PIXYPROXY_WEBHOOK_RETRY_BASE_SECONDS": "1"}
    with run_server(tmp_path, slow_retry) as first:
        answer = submit(first, {"prompt": "a fox", "webhook_url": f"http://127.0.0.1:{port}/hook"})
        assert answer.status_code == 202, answer.text
        wait_for("a first, refused attempt", first_attempt_failed(tmp_path))
    strict = {**WEBHOOKS, "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "false"}
    with webhook_receiver(port=port) as receiver, run_server(tmp_path, strict) as second:
        row = wait_for("the delivery to fail", lambda: _failed(tmp_path))
        log = second.log_text()
    assert receiver.received == []
    assert "private" in row["last_error"]
    assert "Traceback" not in log


def _failed(workdir: Path) -> dict | None:
    row = delivery_row(workdir)
    return row if row and row["status"] == "failed" else None


@pytest.mark.mysql
def test_two_replicas_on_mysql_send_each_webhook_once(tmp_path, mysql_server) -> None:
    """Deliveries in MySQL's outbox, two processes claiming: every job's webhook arrives once."""
    with mysql_server.database() as name, webhook_receiver(script=[500] * 5) as receiver:
        env = {**WEBHOOKS, "PIXYPROXY_DATABASE_URL": mysql_server.url(name)}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with run_server(tmp_path / "a", env) as first, run_server(tmp_path / "b", env) as second:
            ids = []
            for i in range(12):
                target = first if i % 2 else second
                answer = submit(target, {"prompt": f"a fox {i}", "webhook_url": receiver.url})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
            # 5 first attempts answered 500, so 17 arrivals: each job delivered once, some retried.
            receiver.wait(len(ids) + 5, timeout=60)
            rows = wait_for(
                "every delivery to be marked delivered",
                lambda: (
                    r
                    if len(r := mysql_server.query(name, "SELECT status FROM webhook_deliveries")) == len(ids)
                    and all(s == "delivered" for (s,) in r)
                    else None
                ),
            )
    delivered = [r for r in receiver.received if r.verified]
    assert len(delivered) == len(receiver.received) == len(ids) + 5
    assert sorted({r.payload["data"]["id"] for r in delivered}) == sorted(ids)
    assert len(rows) == len(ids)


def test_a_canceled_job_is_posted_as_canceled(tmp_path) -> None:
    slow = {**WEBHOOKS, "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "30"}
    with webhook_receiver() as receiver, run_server(tmp_path, slow) as server:
        answer = submit(server, {"prompt": "never finished", "webhook_url": receiver.url})
        assert answer.status_code == 202, answer.text
        canceled = httpx.delete(f"{server.base_url}/image/jobs/{answer.json()['id']}", timeout=10)
        assert canceled.status_code == 202, canceled.text
        (got,) = receiver.wait(1, timeout=30)
    assert got.verified
    assert got.payload["type"] == "image.job.canceled"
    assert got.payload["data"] == canceled.json()

"""`serve --workers N`: every worker process writes the agreed log lines, not only the parent."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port

# The README's format: `date time LEVEL request-id [thread-id] [function:line] message`, the request id
# `host-stamp-pid-threadid-n` naming the worker's own process and thread.
REQUEST_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} INFO "
    r"(?P<id>[\w-]+-\d{20}-(?P<pid>\d+)-(?P<thread>\d+)-\d+) \[(?P<logged_thread>\d+)\] "
    r"\[\w+:\d+\] REQUEST (?P<what>START|END GET /healthz 200 \d+\.\dms)$"
)
WORKERS = ("--workers", "2")
READY_LINE = re.compile(r" INFO - \[\d+\] \[\w+:\d+\] PixyProxy \S+ ready in process (?P<pid>\d+): ")


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_each_worker_logs_its_ready_line_and_its_requests(tmp_path: Path, server: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env["TMPDIR"] = str(tmp_path)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixyproxy.entrypoints.cli",
                "serve",
                "--port",
                str(port),
                *WORKERS,
                "--server",
                server,
            ],
            cwd=tmp_path,
            env={**env, "PIXYPROXY_JOB_WORKER": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60  # polled: the workers are other processes, with no event to wait on
        while len(READY_LINE.findall(log_path.read_text())) < 2:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "two workers did not log ready:\n" + log_path.read_text()
            time.sleep(0.1)
        ready_pids = {m["pid"] for m in READY_LINE.finditer(log_path.read_text())}
        assert len(ready_pids) == 2 and str(process.pid) not in ready_pids
        # A new connection each time: the kernel hands each to either worker; go on until both answered.
        while {m["pid"] for m in _request_lines(log_path)} != ready_pids:
            assert time.monotonic() < deadline, "not both workers answered:\n" + log_path.read_text()
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"})
            assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = _request_lines(log_path)
    by_id: dict[str, list[re.Match]] = {}
    for line in lines:
        by_id.setdefault(line["id"], []).append(line)
    for request_id, pair in by_id.items():
        assert [m["what"].split()[0] for m in pair] == ["START", "END"], request_id
        assert all(m["thread"] == m["logged_thread"] for m in pair)


def _request_lines(log_path: Path) -> list[re.Match]:
    text = log_path.read_text()
    matches = [REQUEST_LINE.match(line) for line in text.splitlines() if "REQUEST" in line]
    assert all(matches), text
    return [m for m in matches if m is not None]

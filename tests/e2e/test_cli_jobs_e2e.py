"""`pixyproxy generate --async` as a person uses it, against the real service (offline generator, which
streams previews): the job's status changes and previews show as they happen, the images are saved."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.e2e.server import run_server
from tests.e2e.test_cli_e2e import cli_env, pixyproxy
from tests.support.webhook_receiver import SECRET, webhook_receiver

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {
    "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.3",
    "PIXYPROXY_JOB_POLL_SECONDS": "0.05",
    "PIXYPROXY_WEBHOOK_SECRET": SECRET,
    "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "true",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("cli-jobs"), ENV) as running:
        yield running


def test_async_shows_each_status_and_preview_then_saves_the_images(server, tmp_path) -> None:
    result = pixyproxy(
        "generate",
        "a fox in snow",
        "--async",
        "-n",
        "2",
        "--partial-images",
        "2",
        "--size",
        "256x256",
        "-o",
        "fox",
        "--url",
        server.base_url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("submitted job ")
    job_id = lines[0].split()[-1]
    assert any(line.endswith(" running") for line in lines)
    assert sum("preview" in line for line in lines) == 4  # 2 previews of each of 2 images
    assert any(line.startswith("image 2: preview 2/2") for line in lines)
    assert f"job {job_id} succeeded" in result.stderr and "2 images" in result.stderr
    for name in ("fox-1.png", "fox-2.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
        assert f"saved {tmp_path / name}" in result.stderr or f"saved {name}" in result.stderr
    assert "256x256" in result.stdout  # each image's details


def test_async_json_prints_the_ended_job(server, tmp_path) -> None:
    with webhook_receiver() as receiver:
        result = pixyproxy(
            "generate",
            "a kite",
            "--async",
            "--json",
            "--webhook-url",
            receiver.url,
            "--url",
            server.base_url,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        (got,) = receiver.wait(1, timeout=30)
    assert job["status"] == "succeeded" and len(job["images"]) == 1
    assert got.verified and got.payload["data"]["id"] == job["id"]


def test_async_refusals_print_the_servers_detail(server, tmp_path) -> None:
    result = pixyproxy(
        "generate",
        "x",
        "--async",
        "--webhook-url",
        "ftp://hooks.example.com/",
        "--url",
        server.base_url,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "webhook_url: only http and https" in result.stderr and "invalid_webhook_url" in result.stderr
    plain = pixyproxy("generate", "x", "-n", "2", "--url", server.base_url, cwd=tmp_path)
    assert plain.returncode == 2 and "--async" in plain.stderr


def test_async_is_live_in_a_terminal(server, tmp_path) -> None:
    """In a terminal (a pty here) the spinner and preview bars are drawn while the job runs."""
    controller, terminal = pty.openpty()
    env = cli_env(TERM="xterm-256color", COLUMNS="120", LINES="30")
    del env["NO_COLOR"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixyproxy.entrypoints.cli",
            "generate",
            "a slow fox",
            "--async",
            "--partial-images",
            "3",
            "--url",
            server.base_url,
        ],
        cwd=tmp_path,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    screen = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # reading the child's terminal until it closes
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(timeout=10) == 0
    text = screen.decode(errors="replace")
    assert "running" in text and "preview 3/3" in text and "succeeded" in text
    assert "━" in text  # a progress bar was drawn

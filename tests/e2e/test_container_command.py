"""What the container image runs, run here without a container engine: `pixyproxy serve` configured only
by the image's environment variables, probed by the Dockerfile's own HEALTHCHECK command."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.server import free_port

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def healthcheck_command() -> list[str]:
    """The exec-form CMD of the Dockerfile's HEALTHCHECK, with `python` as this interpreter."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    exec_form = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M).group(1)
    command = json.loads(exec_form)
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_serve_from_environment_and_the_image_healthcheck(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env.update(
        PIXYPROXY_HOST="127.0.0.1",
        PIXYPROXY_PORT=str(port),
        PIXYPROXY_WORKERS="1",
        PIXYPROXY_GRACEFUL_TIMEOUT="5",
        PIXYPROXY_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'pixyproxy.db'}",
        PIXYPROXY_STORAGE_URL=f"file://{tmp_path / 'data' / 'images'}",
    )
    check = healthcheck_command()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "serve"],  # no flags, as the image runs it
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # polled: the healthcheck is a command, with no event to wait on
        while subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.2)
        created = httpx.post(f"http://127.0.0.1:{port}/image/", json={"prompt": "from the env"}, timeout=30)
        assert created.status_code == 200
        assert (tmp_path / "data" / "images").is_dir()  # the storage URL from the environment was used
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped.
        assert process.wait(timeout=30) in (0, -15)
        log.close()
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0

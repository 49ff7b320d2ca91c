"""The `pixyproxy` command as a person uses it, against the real service."""

import hashlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixyproxy.entrypoints import cli
from tests.e2e.server import free_port, run_server

COMMANDS = ["serve", "init", "gc", "generate", "list", "show", "download"]
API_KEY = "cli-e2e-key-4b2a"
MISSING = "00000000-0000-4000-8000-000000000000"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", **extra})
    return env


def pixyproxy(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("cli-server")) as running:
        yield running


def test_every_command_has_help():
    def help_of(*command: str) -> str:
        result = CliRunner().invoke(
            cli.app, [*command, "--help"], env={"COLUMNS": "200"}, prog_name="pixyproxy"
        )
        assert result.exit_code == 0, result.output
        return result.output

    top = help_of()
    for command in COMMANDS:
        assert command in top
        assert f"Usage: pixyproxy {command} [OPTIONS]" in help_of(command)
    assert "PIXYPROXY_URL" in help_of("generate") and "PIXYPROXY_WORKERS" in help_of("serve")


def test_generate_show_list_download(server, tmp_path):
    made = pixyproxy(
        "generate", "a lighthouse at dusk", "-o", "out.png", "--url", server.base_url, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    guid = re.search(r"guid\s+([0-9a-f-]{36})", made.stdout).group(1)
    png = (tmp_path / "out.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "generated in" in made.stderr and "saved out.png" in made.stderr

    shown = pixyproxy("show", guid, "--url", server.base_url, cwd=tmp_path)
    assert shown.returncode == 0 and "a lighthouse at dusk" in shown.stdout
    assert hashlib.sha256(png).hexdigest() in shown.stdout

    listed = pixyproxy("list", "--url", server.base_url, cwd=tmp_path)
    assert listed.returncode == 0 and guid in listed.stdout and "a lighthouse at dusk" in listed.stdout

    fetched = pixyproxy("download", guid, "--url", server.base_url, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / f"{guid}.png").read_bytes() == png


def test_json_output_and_the_url_from_the_environment(server, tmp_path):
    env = cli_env(PIXYPROXY_URL=server.base_url)
    made = pixyproxy("generate", "a fox in json", "--size", "256x256", "--json", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    image = json.loads(made.stdout)
    assert (image["prompt"], image["width"]) == ("a fox in json", 256)
    listed = json.loads(pixyproxy("list", "--limit", "1", "--json", cwd=tmp_path, env=env).stdout)
    assert [item["guid"] for item in listed] == [image["guid"]]
    shown = json.loads(pixyproxy("show", image["guid"], "--json", cwd=tmp_path, env=env).stdout)
    assert shown == image


def test_errors_print_the_servers_detail_and_exit_non_zero(server, tmp_path):
    missing = pixyproxy("show", MISSING, "--url", server.base_url, cwd=tmp_path)
    assert missing.returncode == 1
    assert "No image has that guid." in missing.stderr and "image_not_found" in missing.stderr
    assert re.search(r"request id \S+", missing.stderr)
    assert "Traceback" not in missing.stderr

    invalid = pixyproxy("generate", "a fox", "--size", "3x3", "--url", server.base_url, cwd=tmp_path)
    assert invalid.returncode == 1 and "size" in invalid.stderr and "422" in invalid.stderr

    download = pixyproxy("download", MISSING, "--url", server.base_url, cwd=tmp_path)
    assert download.returncode == 1 and not (tmp_path / f"{MISSING}.png").exists()

    unreachable = pixyproxy("list", "--url", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_the_api_key_comes_from_the_environment(tmp_path):
    with run_server(tmp_path, {"PIXYPROXY_API_KEYS": API_KEY}) as keyed:
        refused = pixyproxy("list", "--url", keyed.base_url, cwd=tmp_path)
        assert refused.returncode == 1 and "API key" in refused.stderr and "401" in refused.stderr
        allowed = pixyproxy(
            "generate",
            "a fox with a key",
            "--url",
            keyed.base_url,
            cwd=tmp_path,
            env=cli_env(PIXYPROXY_API_KEY=API_KEY),
        )
        assert allowed.returncode == 0, allowed.stderr
        assert API_KEY not in allowed.stdout + allowed.stderr


def test_generate_shows_a_live_spinner_with_the_elapsed_time(tmp_path):
    """In a terminal (a pty here) the wait for a slow generator is animated, then cleared."""
    with run_server(tmp_path, {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "1.5"}) as slow:
        controller, terminal = pty.openpty()
        env = cli_env(TERM="xterm-256color", COLUMNS="100", LINES="30")
        del env["NO_COLOR"]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixyproxy.entrypoints.cli",
                "generate",
                "a slow fox",
                "--url",
                slow.base_url,
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
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        os.close(controller)
        assert process.wait(timeout=10) == 0
    text = screen.decode(errors="replace")
    assert "Generating “a slow fox”" in text
    frames = set(re.findall(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", text))
    assert len(frames) >= 2, f"the spinner did not move: {text!r}"
    assert re.search(r"0:00:0[0-9]", text)  # the elapsed time column
    assert "generated in" in text and "a slow fox" in text

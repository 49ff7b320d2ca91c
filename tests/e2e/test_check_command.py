"""`pixyproxy check` and `serve`'s start: the configuration validated the same way, problems one line each."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import free_port


def run(workdir: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    return subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", *args],
        cwd=workdir,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_check_on_a_ready_embedded_default_passes_and_reaches_everything(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    result = run(tmp_path, "check", PIXYPROXY_API_KEYS="ducky:user:hunter2")
    assert result.returncode == 0, result.stderr
    assert "PIXYPROXY_API_KEYS=********" in result.stdout and "hunter2" not in result.stdout
    lines = result.stdout.splitlines()
    assert "  ok   storage   file: wrote, read and deleted a probe object" in lines
    assert any(line.startswith("  ok   database  sqlite, schema revision ") for line in lines)
    assert "  -    redis     not configured" in lines
    assert any(line.startswith("  ok   generator offline") for line in lines)
    assert not list((tmp_path / "pixyproxy-data" / "images").iterdir())  # the probe object is gone


def test_check_exits_non_zero_with_a_line_per_unreachable_dependency(tmp_path):
    dead_port = free_port()  # nothing listens there
    (tmp_path / "not-a-folder").write_text("")
    result = run(
        tmp_path,
        "check",
        "--timeout",
        "5",
        PIXYPROXY_REDIS_URL=f"redis://127.0.0.1:{dead_port}/0",
        PIXYPROXY_STORAGE_URL="file:not-a-folder",
        PIXYPROXY_PORTT="8002",
    )
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(":")[1].strip() for line in problems] == ["storage", "redis"], result.stderr
    assert "warning: PIXYPROXY_PORTT is not a PixyProxy setting" in result.stderr
    assert "did you mean PIXYPROXY_PORT?" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "PIXYPROXY_API_KEYS",
            "ducky:superuser:hunter2",
            "error: PIXYPROXY_API_KEYS entry 1: a key's role is one of admin, user",
        ),
        (
            "PIXYPROXY_DATABASE_URL",
            "postgres://pixy:hunter2@127.0.0.1/pixy",
            "error: PIXYPROXY_DATABASE_URL: unsupported scheme 'postgres'; use sqlite:///path/to.db or "
            "mysql://user:pass@host:3306/db",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "check"])
def test_a_bad_configuration_stops_with_one_line_and_no_traceback(
    tmp_path, command, variable, value, expected
):
    args = ["--port", str(free_port())] if command == "serve" else []
    result = run(tmp_path, command, *args, timeout=30, **{variable: value})
    assert result.returncode != 0
    assert result.stderr.strip() == expected and "hunter2" not in result.stdout + result.stderr


def test_serve_logs_a_warning_for_an_unknown_variable_and_starts(tmp_path):
    from tests.e2e.server import run_server

    with run_server(tmp_path, {"PIXYPROXY_GENRATOR": "openai"}) as server:
        log = server.log_text()
    (line,) = [line for line in log.splitlines() if "PIXYPROXY_GENRATOR" in line]
    assert " WARNING - [" in line
    assert line.endswith("is not a PixyProxy setting and is ignored; did you mean PIXYPROXY_GENERATOR?")


@pytest.mark.parametrize(("model", "reachable", "expected"), [
    (None, True, "  ok   generator openai, default model "),
    ("not-offered-model", True, "error: generator: model 'not-offered-model' is not offered by the server"),
    (None, False, "error: generator: openai: the server could not be asked which models it offers"),
])  # fmt: skip
def test_check_asks_the_openai_server_for_its_models(tmp_path, fake_openai, model, reachable, expected):
    assert run(tmp_path, "init").returncode == 0
    env = {"PIXYPROXY_GENERATOR": "openai", "OPENAI_API_KEY": "sk-test-not-a-real-key-0000"}
    env["OPENAI_BASE_URL"] = fake_openai.base_url if reachable else f"http://127.0.0.1:{free_port()}/v1"
    if model:
        env["PIXYPROXY_OPENAI_MODEL"] = model
    result = run(tmp_path, "check", "--timeout", "20", **env)
    assert result.returncode == (0 if expected.startswith("  ok") else 1), result.stderr
    assert expected in result.stdout + result.stderr

"""The `pixyproxy` command as a person uses it, against the real service."""

import asyncio
import hashlib
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixyproxy.entrypoints import cli
from tests.contract.test_repository_contract import make_detail
from tests.e2e.server import free_port, run_server
from tests.support.sql import make_repository, sqlite_url

COMMANDS = ["serve", "init", "reindex", "gc", "generate", "edit", "list", "search", "show", "download"]
COMMANDS += ["delete", "usage"]
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


def test_generate_takes_every_image_option_and_saves_with_the_formats_extension(server, tmp_path):
    made = pixyproxy(
        "generate", "a kite with options", "--background", "transparent", "--format", "webp",
        "--compression", "60", "--moderation", "low", "--size", "320x200", "--quality", "high",
        "-o", "kite", "--url", server.base_url, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "saved kite.webp" in made.stderr and not (tmp_path / "kite").exists()
    data = (tmp_path / "kite.webp").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert re.search(r"format\s+webp, compression 60", made.stdout)
    assert re.search(r"background\s+transparent", made.stdout) and re.search(r"moderation\s+low", made.stdout)
    guid = re.search(r"guid\s+([0-9a-f-]{36})", made.stdout).group(1)
    shown = json.loads(pixyproxy("show", guid, "--json", "--url", server.base_url, cwd=tmp_path).stdout)
    assert (shown["output_format"], shown["output_compression"], shown["background"]) == (
        "webp",
        60,
        "transparent",
    )
    assert (shown["moderation"], shown["width"], shown["height"]) == ("low", 320, 200)
    # download names the file by the stored format; a name without an extension gets it too
    assert pixyproxy("download", guid, "--url", server.base_url, cwd=tmp_path).returncode == 0
    assert (tmp_path / f"{guid}.webp").read_bytes() == data
    assert pixyproxy("download", guid, "-o", "again", "--url", server.base_url, cwd=tmp_path).returncode == 0
    assert (tmp_path / "again.webp").read_bytes() == data

    jpeg = pixyproxy(
        "generate",
        "a jpeg kite",
        "--format",
        "jpeg",
        "-o",
        "out.jpeg",
        "--url",
        server.base_url,
        cwd=tmp_path,
    )
    assert jpeg.returncode == 0, jpeg.stderr
    assert (tmp_path / "out.jpeg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_an_output_name_of_another_format_is_refused_before_anything_is_generated(server, tmp_path):
    before = len(
        json.loads(pixyproxy("list", "--limit", "0", "--json", "--url", server.base_url, cwd=tmp_path).stdout)
    )
    for args in (["--format", "jpeg", "-o", "out.png"], ["-o", "out.webp"]):
        refused = pixyproxy("generate", "a kite", *args, "--url", server.base_url, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert "the image will be" in refused.stderr and "--format" in refused.stderr
    bad = pixyproxy(
        "generate", "a kite", "--background", "see-through", "--url", server.base_url, cwd=tmp_path
    )
    assert bad.returncode == 2 and "see-through" in bad.stderr
    after = len(
        json.loads(pixyproxy("list", "--limit", "0", "--json", "--url", server.base_url, cwd=tmp_path).stdout)
    )
    assert after == before and not list(tmp_path.glob("out.*"))


def test_edit_makes_a_new_image_with_its_lineage_and_saves_it(server, tmp_path):
    def made(*args: str) -> dict:
        result = pixyproxy("generate", *args, "--json", "--url", server.base_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    source = made("a harbour at noon")
    mask = made("a round mask", "--background", "transparent")
    first, second = made("a gull"), made("a boat")
    edited = pixyproxy(
        "edit", source["guid"], "the same harbour at night", "--mask", mask["guid"],
        "--reference", first["guid"], "--reference", second["guid"], "--format", "webp", "-o", "night",
        "--url", server.base_url, cwd=tmp_path,
    )  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    assert "edited in" in edited.stderr and "saved night.webp" in edited.stderr
    assert re.search(rf"edit of\s+{source['guid']}", edited.stdout)
    assert re.search(rf"mask\s+{mask['guid']}", edited.stdout)
    assert re.search(rf"references\s+{first['guid']}, {second['guid']}", edited.stdout)
    guid = re.search(r"guid\s+([0-9a-f-]{36})", edited.stdout).group(1)
    detail = json.loads(pixyproxy("show", guid, "--json", "--url", server.base_url, cwd=tmp_path).stdout)
    assert (detail["parent_guid"], detail["mask_guid"]) == (source["guid"], mask["guid"])
    assert detail["reference_guids"] == [first["guid"], second["guid"]]
    assert (detail["prompt"], detail["content_type"]) == ("the same harbour at night", "image/webp")
    saved = (tmp_path / "night.webp").read_bytes()
    assert hashlib.sha256(saved).hexdigest() == detail["sha256"]

    again = pixyproxy(
        "edit", source["guid"], "a foggy morning", "--json", "--url", server.base_url, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["parent_guid"] == source["guid"]


def test_a_negative_prompt_goes_with_generate_edit_and_async_jobs(server, tmp_path):
    def run(*args: str) -> dict:
        result = pixyproxy(*args, "--json", "--url", server.base_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    made = run("generate", "a meadow", "--negative-prompt", "cows, fences")
    assert made["usage"]["provider_details"]["negative_prompt"] == "cows, fences"
    edited = run("edit", made["guid"], "the meadow at dusk", "--negative-prompt", "sun")
    assert edited["usage"]["provider_details"]["negative_prompt"] == "sun"
    job = run("generate", "a meadow", "--async", "-n", "2", "--negative-prompt", "cows")
    assert [i["usage"]["provider_details"]["negative_prompt"] for i in job["images"]] == ["cows", "cows"]
    empty = pixyproxy(
        "generate", "a meadow", "--negative-prompt", " ", "--url", server.base_url, cwd=tmp_path
    )
    assert empty.returncode == 1 and "negative_prompt" in empty.stderr and "422" in empty.stderr


def test_edit_errors_print_the_servers_detail(server, tmp_path):
    missing = pixyproxy("edit", MISSING, "add a sun", "--url", server.base_url, cwd=tmp_path)
    assert missing.returncode == 1 and "No image has that guid." in missing.stderr and "404" in missing.stderr
    source = json.loads(
        pixyproxy("generate", "a source", "--json", "--url", server.base_url, cwd=tmp_path).stdout
    )
    no_mask = pixyproxy(
        "edit", source["guid"], "add a sun", "--mask", MISSING, "--url", server.base_url, cwd=tmp_path
    )
    assert no_mask.returncode == 1 and "mask_guid" in no_mask.stderr and "422" in no_mask.stderr
    assert "Traceback" not in missing.stderr + no_mask.stderr
    moderated = pixyproxy(
        "edit", source["guid"], "x", "--moderation", "low", "--url", server.base_url, cwd=tmp_path
    )
    assert moderated.returncode == 2 and "No such option" in moderated.stderr  # edits take none


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


def test_reindex_posts_the_words_of_an_image_stored_without_them(tmp_path):
    """On the embedded default: an image whose row an older version wrote alone is found after reindex."""
    data = tmp_path / "pixyproxy-data"
    env = cli_env(PIXYPROXY_DATABASE_URL=f"sqlite:///{data / 'pixyproxy.db'}")
    assert pixyproxy("init", cwd=tmp_path, env=env).returncode == 0
    detail = make_detail(prompt="a stray lighthouse")

    async def store_without_words() -> None:
        repository = make_repository(sqlite_url(data / "pixyproxy.db"))
        await repository.add(detail)
        await repository.close()
        with sqlite3.connect(data / "pixyproxy.db") as db:
            db.execute("DELETE FROM image_words")

    asyncio.run(store_without_words())
    done = pixyproxy("reindex", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "read the words of 1 stored image(s)" in done.stdout
    with sqlite3.connect(data / "pixyproxy.db") as db:
        assert sorted(w for (w,) in db.execute("SELECT word FROM image_words")) == ["lighthouse", "stray"]

"""The `pixyproxy` commands that find, fetch, delete and account for images, and that manage jobs, as a
person uses them against the real service (offline generator)."""

import io
import json
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pixyproxy import __version__
from pixyproxy.client import PixyProxyClient
from pixyproxy.entrypoints import cli
from tests.e2e.server import run_server
from tests.e2e.test_cli_e2e import MISSING, cli_env

ENV = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.2", "PIXYPROXY_JOB_POLL_SECONDS": "0.05"}
# A job there runs until it is canceled (a test ends it): a command started after it always finds it running.
SLOW = {"PIXYPROXY_OFFLINE_LATENCY_SECONDS": "120", "PIXYPROXY_JOB_POLL_SECONDS": "0.05"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("cli-manage"), ENV) as running:
        yield running


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("cli-manage-slow"), SLOW) as running:
        yield running


@pytest.fixture
def run(server, tmp_path):
    """`pixyproxy ARGS... --url <server>` in `tmp_path`, with a umask of 022 unless told otherwise."""

    def run(*args: str, umask: int = 0o022, url: str = server.base_url) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pixyproxy.entrypoints.cli", *args, "--url", url],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
            umask=umask,
        )

    return run


@pytest.fixture
def client(server):
    with PixyProxyClient(server.base_url, api_key="") as client:
        yield client


def a_word() -> str:
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def test_version_and_help_of_the_new_commands() -> None:
    runner = CliRunner()
    version = runner.invoke(cli.app, ["--version"], prog_name="pixyproxy")
    assert version.exit_code == 0 and version.output == f"pixyproxy {__version__}\n"
    for command in (["search"], ["delete"], ["usage"], ["jobs", "list"], ["jobs", "watch"]):
        shown = runner.invoke(cli.app, [*command, "--help"], env={"COLUMNS": "200"}, prog_name="pixyproxy")
        assert shown.exit_code == 0, shown.output
        assert f"Usage: pixyproxy {' '.join(command)} [OPTIONS]" in shown.output


def test_search_and_list_filters(run, client) -> None:
    word = a_word()
    first, second = (client.generate(f"a {word} lantern {i}", size="64x64") for i in range(2))
    found = run("search", word.upper(), "--json")
    assert found.returncode == 0, found.stderr
    assert [i["guid"] for i in json.loads(found.stdout)] == [str(second.guid), str(first.guid)]

    after = first.created_at.isoformat().replace("+00:00", "Z")
    narrowed = run("list", "-q", word, "--model", first.model, "--after", after)
    assert narrowed.returncode == 0, narrowed.stderr
    assert str(second.guid) in narrowed.stdout and str(first.guid) not in narrowed.stdout

    assert "no images match" in run("list", "-q", word, "--model", "another-model").stderr
    refused = run("search", word, "--before", "last week")
    assert refused.returncode == 1 and "created_before" in refused.stderr and "422" in refused.stderr


def test_download_a_variant_with_the_permissions_the_umask_gives(run, client, tmp_path) -> None:
    image = client.generate("a lantern for variants", size="512x256")
    plain = run("download", str(image.guid))
    assert plain.returncode == 0, plain.stderr
    assert stat.S_IMODE((tmp_path / f"{image.guid}.png").stat().st_mode) == 0o644

    small = run("download", str(image.guid), "--width", "128", "--format", "webp", umask=0o077)
    assert small.returncode == 0, small.stderr
    saved = tmp_path / f"{image.guid}-w128.webp"
    assert f"saved {saved.name}" in small.stderr
    assert Image.open(io.BytesIO(saved.read_bytes())).size == (128, 64)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    named = run("download", str(image.guid), "--format", "jpeg", "-o", "lantern")
    assert named.returncode == 0 and (tmp_path / "lantern.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    clash = run("download", str(image.guid), "--format", "jpeg", "-o", "lantern.png")
    assert clash.returncode == 2 and "--format is jpeg" in clash.stderr
    bad = run("download", str(image.guid), "--width", "100")
    assert bad.returncode == 1 and "width" in bad.stderr and "422" in bad.stderr


def test_delete(run, client) -> None:
    images = [client.generate(f"a lantern to delete {i}", size="64x64") for i in range(2)]
    deleted = run("delete", *(str(i.guid) for i in images))
    assert deleted.returncode == 0, deleted.stderr
    assert all(f"deleted {i.guid}" in deleted.stderr for i in images)
    assert "No image has that guid." in run("show", str(images[0].guid)).stderr
    again = run("delete", str(images[1].guid))
    assert again.returncode == 1 and "404" in again.stderr


def test_usage(run, client) -> None:
    client.generate("a lantern that counts", size="64x64")
    shown = run("usage", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["keys"][0]["key"] is None and report["keys"][0]["images"] >= 1
    table = run("usage")
    assert re.search(r"\(no key\)\s+\d+", table.stdout), table.stdout
    none = run("usage", "--since", "2000-01-01", "--until", "2000-01-02")
    assert none.returncode == 0 and "no provider calls in that period" in none.stderr
    refused = run("usage", "--since", "tomorrow")
    assert refused.returncode == 1 and "since" in refused.stderr


def test_jobs_list_show_cancel(run, slow_server) -> None:
    url = slow_server.base_url
    with PixyProxyClient(url, api_key="") as client:
        job = client.submit("a slow lantern job", n=2)
    canceled = run("jobs", "cancel", str(job.id), url=url)
    assert canceled.returncode == 0 and f"job {job.id} canceled" in canceled.stderr
    again = run("jobs", "cancel", str(job.id), url=url)
    assert again.returncode == 1 and "job_finished" in again.stderr

    listed = json.loads(run("jobs", "list", "--status", "canceled", "--json", url=url).stdout)
    assert str(job.id) in [j["id"] for j in listed]
    assert str(job.id) in run("jobs", "list", url=url).stdout
    shown = run("jobs", "show", str(job.id), url=url)
    assert re.search(r"status\s+canceled", shown.stdout) and "a slow lantern job" in shown.stdout
    missing = run("jobs", "show", MISSING, url=url)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_jobs_watch_waits_for_a_job_and_saves_its_images(run, client, tmp_path) -> None:
    job = client.submit("a lantern watched again", n=2)
    watched = run("jobs", "watch", str(job.id), "-o", "lantern")
    assert watched.returncode == 0, watched.stderr
    assert f"job {job.id} succeeded" in watched.stderr
    assert "saved lantern-1.png" in watched.stderr and "saved lantern-2.png" in watched.stderr
    done = client.job(job)
    for number, image in enumerate(done.images, 1):
        assert (tmp_path / f"lantern-{number}.png").read_bytes() == client.content(image)
    # An ended job shows at once.
    again = run("jobs", "watch", str(job.id), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["id"] == str(job.id)
    assert not list(Path(tmp_path).glob(".*.part"))


def test_jobs_watch_a_job_canceled_meanwhile_exits_1(run, slow_server) -> None:
    with PixyProxyClient(slow_server.base_url, api_key="") as client:
        job = client.submit("a lantern canceled while watched")
        watching = subprocess.Popen(
            [sys.executable, "-m", "pixyproxy.entrypoints.cli", "jobs", "watch", str(job.id)],
            env={**cli_env(), "PIXYPROXY_URL": slow_server.base_url},
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watching.stderr is not None
        # Cancel once the command is attached: it prints the job's status when the stream opens.
        first = watching.stderr.readline()
        assert re.fullmatch(rf"job {str(job.id)[:8]} (queued|running)\n", first), first
        client.cancel(job)
        assert watching.wait(timeout=60) == 1
    assert "was canceled" in watching.stderr.read()

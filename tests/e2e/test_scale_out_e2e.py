"""Scale-out as deploy/compose.yaml runs it: two replicas over one MySQL database and one image store,
behind nginx with deploy/nginx.conf.template (its upstreams the two local replicas).

Needs the `nginx` binary (Debian: apt-get install nginx-light); skipped without it.
"""

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pixyproxy.client import AsyncPixyProxyClient, PixyProxyClient
from tests.e2e.server import free_port, run_server

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
NGINX_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf.template"


def nginx_conf(tmp: Path, port: int, upstreams: list[str]) -> str:
    """deploy/nginx.conf.template filled in as the nginx image does, plus what a private nginx needs."""
    first, second = upstreams
    values = {
        "PIXYPROXY_LISTEN": f"127.0.0.1:{port}",
        "PIXYPROXY_UPSTREAM_1": first,
        "PIXYPROXY_UPSTREAM_2": second,
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text, found = re.subn(re.escape("${" + name + "}"), value, text)
        assert found == 1, name
    text = text.replace("access_log /dev/stdout main;", f"access_log {tmp}/access.log main;")
    temp_paths = "".join(
        f"    {name}_temp_path {tmp}/{name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    preamble = f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
    if os.geteuid() == 0:
        preamble += "user root;\n"  # workers must reach the private temporary folders
    return preamble + text


@contextlib.contextmanager
def run_nginx(tmp: Path, upstreams: list[str]) -> Iterator[str]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, port, upstreams))
    process = subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:  # polled with a deadline: nginx is another process, with no event to wait on
            assert process.poll() is None, process.stderr.read().decode()
            try:
                httpx.get(f"{base_url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def generations(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pixyproxy_generations_total"
    )


def served(log_text: str, request: str) -> int:
    return log_text.count(f"REQUEST END {request} ")


def test_two_replicas_behind_nginx_share_one_state(tmp_path, mysql_url):
    shared = tmp_path / "shared"
    env = {
        "PIXYPROXY_DATABASE_URL": mysql_url,
        "PIXYPROXY_STORAGE_URL": f"file://{shared / 'images'}",
        "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.5",  # duplicates overlap while the first is generating
    }
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "lb").mkdir()
    with (
        run_server(tmp_path / "a", env) as a,
        run_server(tmp_path / "b", env) as b,
        run_nginx(tmp_path / "lb", [a.base_url[7:], b.base_url[7:]]) as lb,
    ):
        # Spread: plain requests reach both replicas.
        for _ in range(40):
            assert httpx.get(f"{lb}/healthz").status_code == 200
        assert served(a.log_text(), "GET /healthz") > 1 and served(b.log_text(), "GET /healthz") > 1

        # One state: what one replica stored, the other lists and serves.
        with PixyProxyClient(lb) as client:
            made = {client.generate(f"scale-out fox {i}").guid for i in range(4)}
            assert {image.guid for image in client.list(page_size=3)} == made
        for replica in (a, b):
            with PixyProxyClient(replica.base_url) as direct:
                assert {image.guid for image in direct.list()} == made
                for guid in made:
                    assert direct.content(guid).startswith(b"\x89PNG")

        # One key, one generation: concurrent duplicates reach the replica already generating it.
        before = generations(a.base_url) + generations(b.base_url)

        async def duplicates() -> set:
            async with AsyncPixyProxyClient(lb) as client:
                images = await asyncio.gather(
                    *(
                        client.generate("one key, one image", idempotency_key="scale-out-key")
                        for _ in range(4)
                    )
                )
            return {image.guid for image in images}

        assert len(asyncio.run(duplicates())) == 1
        assert generations(a.base_url) + generations(b.base_url) == before + 1

        # A replica going away: nginx sends its traffic to the other.
        a.process.terminate()
        a.process.wait(timeout=30)
        with PixyProxyClient(lb) as client:
            for i in range(6):
                assert client.generate(f"after a replica left {i}", idempotency_key=f"left-{i}").guid
            assert len(list(client.list())) == len(made) + 1 + 6

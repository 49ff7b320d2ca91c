"""deploy/compose.yaml up, as CI runs it (compose.host-network.yaml on top: every container on the host
network, each server on a free port of 127.0.0.1), checked end to end through nginx, then `down -v`."""

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.containers import compose_command, debian_image, free_port, image_for
from tests.support.services import unavailable
from tests.support.webhook_receiver import SECRET, webhook_receiver

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
pytestmark = pytest.mark.timeout(1800)


def stack_env(pixyproxy_image: str) -> dict[str, str]:
    ports = {name: free_port() for name in ("mysql", "s3", "redis", "replica1", "replica2", "lb")}
    return {
        **os.environ,
        "PIXYPROXY_IMAGE": pixyproxy_image,
        "PIXYPROXY_MYSQL_IMAGE": debian_image("mariadb"),  # mysql:8.4 would also open 33060 on the host
        "PIXYPROXY_S3_IMAGE": debian_image("s3"),  # compose.host-network.yaml runs moto's server
        "PIXYPROXY_REDIS_IMAGE": image_for("PIXYPROXY_TEST_REDIS_IMAGE", "redis"),
        "PIXYPROXY_NGINX_IMAGE": image_for("PIXYPROXY_TEST_NGINX_IMAGE", "nginx"),
        # host-network.env's addresses, on free ports (the shell's values win over the env file's).
        "MYSQL_PORT": str(ports["mysql"]),
        "MYSQL_ADDRESS": f"127.0.0.1:{ports['mysql']}",
        "S3_PORT": str(ports["s3"]),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "PIXYPROXY_S3_PUBLIC_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "REDIS_PORT": str(ports["redis"]),
        "REDIS_ADDRESS": f"127.0.0.1:{ports['redis']}",
        "PIXYPROXY_REPLICA_1_PORT": str(ports["replica1"]),
        "PIXYPROXY_REPLICA_2_PORT": str(ports["replica2"]),
        "PIXYPROXY_UPSTREAM_1": f"127.0.0.1:{ports['replica1']}",
        "PIXYPROXY_UPSTREAM_2": f"127.0.0.1:{ports['replica2']}",
        "PIXYPROXY_LB_LISTEN": f"127.0.0.1:{ports['lb']}",
        "PIXYPROXY_HTTP_PORT": str(ports["lb"]),
        "PIXYPROXY_WEBHOOK_SECRET": SECRET,
        "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "true",
    }


class Stack:
    def __init__(self, env: dict[str, str], compose_cli: list[str], workdir: Path) -> None:
        self.env = env
        self.compose_cli = compose_cli
        self.rendered = workdir / "compose.rendered.yaml"
        self.project = f"pixyproxy-ci-{uuid.uuid4().hex[:8]}"
        self.base_url = f"http://127.0.0.1:{env['PIXYPROXY_HTTP_PORT']}"
        self.replica_urls = [f"http://{env['PIXYPROXY_UPSTREAM_1']}", f"http://{env['PIXYPROXY_UPSTREAM_2']}"]

    def render(self) -> None:
        """compose.yaml with compose.host-network.yaml on top, as `config` merges them, less the published
        ports: meaningless on the host network, and docker-compose 1.x refuses them there."""
        files = ["-f", str(DEPLOY / "compose.yaml"), "-f", str(DEPLOY / "compose.host-network.yaml")]
        env_file = ["--env-file", str(DEPLOY / "host-network.env")]
        merged = subprocess.run([*self.compose_cli, *env_file, *files, "config"], env=self.env,
                                capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        config = yaml.safe_load(merged.stdout)
        for service in config["services"].values():
            service.pop("ports", None)
        self.rendered.write_text(yaml.safe_dump(config))

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        command = [*self.compose_cli, "-p", self.project, "-f", str(self.rendered), *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", *services, timeout=60)
        return result.stdout + result.stderr


@contextlib.contextmanager
def running_stack(env: dict[str, str], workdir: Path) -> Iterator[Stack]:
    compose_cli = compose_command()
    if compose_cli is None:
        unavailable("docker compose or docker-compose")
    stack = Stack(env, compose_cli, workdir)
    stack.render()
    try:
        up = stack.compose("up", "-d", "--no-build")
        assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
        wait_until_ready(stack)
        yield stack
    finally:
        down = stack.compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stdout + down.stderr
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert left.stdout.strip() == "", "containers left after down -v"


def wait_until_ready(stack: Stack, timeout: float = 180) -> None:
    """Polled: the stack is other processes, with no event to wait on."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{stack.base_url}/readyz", timeout=3).status_code == 200:
                return
        assert time.monotonic() < deadline, "the stack never became ready:\n" + stack.logs()[-6000:]
        time.sleep(0.5)


def test_the_compose_stack_serves_through_nginx_and_comes_down(engine, pixyproxy_image, tmp_path):
    with (
        running_stack(stack_env(pixyproxy_image), tmp_path) as stack,
        httpx.Client(base_url=stack.base_url, timeout=30) as client,
    ):
        created = client.post("/image/", json={"prompt": "a lighthouse behind nginx"})
        assert created.status_code == 200, created.text
        guid = created.json()["guid"]
        # Both replicas share the database and S3: each serves the image the other one (or it) made.
        for replica in stack.replica_urls:
            assert httpx.get(f"{replica}/image/{guid}", timeout=10).json() == created.json()
            content = httpx.get(f"{replica}/image/{guid}/content", timeout=10)
            assert content.status_code == 200 and content.content.startswith(b"\x89PNG")
        assert guid in [image["guid"] for image in client.get("/image/").json()]
        assert client.get(f"/image/{guid}/content").content == content.content

        with webhook_receiver() as receiver:
            job = client.post(
                "/image/jobs", json={"prompt": "two lighthouses", "n": 2, "webhook_url": receiver.url}
            )
            assert job.status_code == 202, job.text
            (delivered,) = receiver.wait(1, timeout=60)
        assert delivered.verified and delivered.payload["type"] == "image.job.succeeded"
        assert delivered.payload["data"]["id"] == job.json()["id"]

        # nginx's own refusals, in the API's JSON shape: a body over its limit (26 MiB) ...
        too_large = client.post("/v1/images/edits", content=b"x" * (27 * 1024 * 1024),
                                headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert too_large.status_code == 413, too_large.text
        assert too_large.json()["code"] == "payload_too_large" and too_large.json()["request_id"]
        # ... and no replica to answer.
        stopped = stack.compose("stop", "-t", "10", "pixyproxy-1", "pixyproxy-2")
        assert stopped.returncode == 0, stopped.stderr
        gone = client.get("/image/")
        assert gone.status_code == 502, gone.text
        assert (
            set(gone.json()) == {"detail", "code", "request_id"}
            and gone.json()["code"] == "upstream_unavailable"
        )
        assert gone.headers["x-request-id"] == gone.json()["request_id"]
        # Each replica writes the request lines to its container's log.
        for replica in ("pixyproxy-1", "pixyproxy-2"):
            assert f"REQUEST END GET /image/{guid} 200" in stack.logs(replica), replica

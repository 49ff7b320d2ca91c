"""Servers in containers, started by Testcontainers on the host network: each listens on a free port bound
to 127.0.0.1 (the engine CI starts has no bridge, so a container reaches nothing but this machine).

Images: the upstream ones named by a variable (PIXYPROXY_TEST_MYSQL_IMAGE=mysql:8.4,
PIXYPROXY_TEST_S3_IMAGE=minio/minio), otherwise the ones deploy/images/build.sh makes from Debian's
packages (built on first use when this engine lacks them; that needs root and debootstrap).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "images" / "build.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def debian_image(name: str) -> str:
    """The tag of deploy/images/build.sh's image NAME; the script builds it only if the engine lacks it."""
    result = subprocess.run([str(BUILD_SCRIPT), name], capture_output=True, text=True, timeout=1500)
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} {name} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1].split("=", 1)[1]


def image_for(variable: str, debian_name: str) -> str:
    return os.environ.get(variable) or debian_image(debian_name)


def _without_ryuk() -> None:
    """Ryuk, Testcontainers' reaper, is itself an image from a registry; every fixture here removes its
    own container instead. TESTCONTAINERS_RYUK_DISABLED=false in the environment keeps it."""
    from testcontainers.core.config import testcontainers_config

    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
        testcontainers_config.ryuk_disabled = True


def wait_until_ready(container, ready: Callable[[], bool], timeout: float) -> None:
    """Polled with a deadline: the server is another process, with no event to wait on."""
    deadline = time.monotonic() + timeout
    while not ready():
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "exited" or time.monotonic() > deadline:
            stdout, stderr = container.get_logs()
            log = (stdout + stderr).decode(errors="replace")[-4000:]
            raise RuntimeError(
                f"{container.image} was not ready in {timeout:.0f} s ({wrapped.status}):\n{log}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def host_network_container(
    image: str, command: list[str], env: dict[str, str], ready: Callable[[], bool], timeout: float = 180
) -> Iterator:
    """A started container (testcontainers' DockerContainer) once ready() is true; removed afterwards."""
    from testcontainers.core.container import DockerContainer

    _without_ryuk()
    container = DockerContainer(image).with_command(command).with_kwargs(network_mode="host")
    for name, value in env.items():
        container.with_env(name, value)
    with container:
        wait_until_ready(container, ready, timeout)
        yield container


def compose_command() -> list[str] | None:
    """The compose plugin where present, else the standalone docker-compose (Debian's package); None."""
    plugin = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin and plugin.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None

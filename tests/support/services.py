"""Finding the real services tests need, and what to do when one is missing.

With CI=true a missing MySQL or S3 fails the test run instead of skipping it.
"""

import functools
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    """Fail in CI, skip elsewhere: a developer without the service still runs everything else."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not reachable", pytrace=False)
    pytest.skip(f"{what} is not reachable")


@functools.cache
def docker_available() -> bool:
    """A real ping of the engine, once per session: the `docker` command exists here without one."""
    if os.environ.get("PIXYPROXY_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False

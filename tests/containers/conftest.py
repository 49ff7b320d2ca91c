"""The container tests need an engine that answers: without one they skip (fail with CI=true)."""

import pytest

from tests.support.services import docker_available, unavailable


@pytest.fixture(scope="session")
def engine() -> None:
    if not docker_available():
        unavailable("a container engine (docker or podman's socket; DOCKER_HOST)")


@pytest.fixture(scope="session")
def pixyproxy_image(engine) -> str:
    from tests.support.service_image import service_image

    return service_image()

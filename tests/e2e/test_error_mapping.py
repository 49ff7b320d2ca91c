"""The single exception handler, in-process: the container's providers overridden with fakes."""

import logging

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from pixyproxy.container import Container
from pixyproxy.domain import errors
from pixyproxy.entrypoints.app import create_app
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator


@pytest.fixture
def parts():
    return ScriptedGenerator(), InMemoryImageRepository(), InMemoryBlobStore()


@pytest.fixture
def client(parts):
    generator, repository, blobs = parts
    container = Container()
    container.generator.override(providers.Object(generator))
    container.repository.override(providers.Object(repository))
    container.blobs.override(providers.Object(blobs))
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.GeneratorError("provider said 500"), 502, "generator_error"),
        (errors.GeneratorTimeout(), 504, "generator_timeout"),
        (errors.GeneratorRateLimited(retry_after=7.2), 503, "generator_rate_limited"),
        (errors.ContentPolicyViolation(), 422, "content_policy_violation"),
        (errors.StorageUnavailable(), 503, "storage_unavailable"),
        (errors.MetadataUnavailable(), 503, "metadata_unavailable"),
    ],
)
def test_generator_failures_map_to_status_and_store_nothing(client, parts, exc, status, code):
    generator, repository, blobs = parts
    generator.fail_with = exc
    response = client.post("/image/", json={"prompt": "x"})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert repository.rows == [] and blobs.blobs == {}
    if code == "generator_rate_limited":
        assert response.headers["retry-after"] == "8"


def test_unexpected_exception_is_500_json_without_internals(client, parts, caplog):
    generator, _, _ = parts
    generator.fail_with = RuntimeError("secret internal detail /etc/shadow")
    with caplog.at_level(logging.ERROR):
        response = client.post("/image/", json={"prompt": "x"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and "secret" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    assert "secret internal detail" in caplog.text  # the traceback goes to the log, not the client


def test_storage_down_makes_readyz_503_with_error_shape(client, parts):
    _, _, blobs = parts
    blobs.fail_with = errors.StorageUnavailable("bucket unreachable")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready" and body["checks"]["storage"] == "bucket unreachable"
    assert body["request_id"] == response.headers["x-request-id"]
    assert client.get("/healthz").status_code == 200  # liveness does no I/O


def test_repository_down_on_read_is_503(client, parts):
    _, repository, _ = parts
    repository.fail_with = errors.MetadataUnavailable()
    response = client.get("/image/")
    assert response.status_code == 503 and response.json()["code"] == "metadata_unavailable"

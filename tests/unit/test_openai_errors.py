"""The /v1 error shape: OpenAI's statuses, types, codes and the parameter named by the message."""

import orjson
import pytest
from starlette.exceptions import HTTPException

from pixyproxy.domain import errors
from pixyproxy.entrypoints.errors import describe, error_response
from pixyproxy.entrypoints.openai_errors import is_openai_path, openai_error

Invalid = errors.InvalidImageRequest
BAD = "invalid_request_error"


@pytest.mark.parametrize(
    ("exc", "status", "type_", "param", "code"),
    [
        (Invalid("size: each side must be 16..4096"), 400, BAD, "size", "invalid_request"),
        (Invalid("image[]: must be a file"), 400, BAD, "image[]", "invalid_request"),
        (Invalid("body: must be multipart"), 400, BAD, None, "invalid_request"),
        (Invalid("header.idempotency-key: one"), 400, BAD, None, "invalid_request"),
        (Invalid("no field named here"), 400, BAD, None, "invalid_request"),
        (errors.PayloadTooLarge("too big"), 400, BAD, None, "payload_too_large"),
        (errors.ContentPolicyViolation(), 400, BAD, None, "content_policy_violation"),
        (HTTPException(401, "no key"), 401, "invalid_request_error", None, "invalid_api_key"),
        (HTTPException(429, "slow down"), 429, "requests", None, "rate_limit_exceeded"),
        (errors.ImageNotFound(), 404, "invalid_request_error", None, "image_not_found"),
        (errors.GeneratorTimeout(), 504, "server_error", None, "generator_timeout"),
        (errors.StorageUnavailable(), 503, "server_error", None, "storage_unavailable"),
    ],
)
def test_each_error_gets_openais_status_type_param_and_code(exc, status, type_, param, code):
    got_status, body = openai_error(describe(exc))
    assert got_status == status
    assert body == {"error": {"message": describe(exc).detail, "type": type_, "param": param, "code": code}}


def test_the_shape_is_chosen_by_path_and_headers_are_kept():
    exc = errors.GeneratorRateLimited(retry_after=3)
    openai_shaped = error_response(exc, "/v1/images/generations")
    assert set(orjson.loads(openai_shaped.body)) == {"error"}
    assert openai_shaped.headers["retry-after"] == "3" and openai_shaped.headers["x-content-type-options"]
    ours = error_response(exc, "/image/")
    assert set(orjson.loads(ours.body)) == {"detail", "code", "request_id"}
    assert ours.status_code == openai_shaped.status_code == 503


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1", True),
        ("/v1/models", True),
        ("/v1/images/edits/", True),
        ("/v10/x", False),
        ("/image/v1", False),
    ],
)
def test_only_the_v1_prefix_is_the_openai_face(path, expected):
    assert is_openai_path(path) is expected

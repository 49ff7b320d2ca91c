"""Every /v1 error as the openai SDK's own exception type, in OpenAI's shape, storing nothing: refusals
raised by middleware (401 key, 429 rate limit, 413 body limit) as well as the generator's and storage's
failures. In-process apps (the container's parts overridden) served over real HTTP."""

import io
import logging

import httpx
import openai
import pytest
from dependency_injector import providers
from PIL import Image

from pixyproxy.domain import errors
from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container
from tests.support.fakes import ScriptedGenerator
from tests.support.openai_compatible import OneOfSeveralFails, PartialThenFails, served

KEY = "the-good-key-7f3a"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def serve(tmp_path):
    """serve(generator=None, **settings) -> (sdk, http) against a fresh embedded-default app."""
    opened = []

    def start(generator=None, **settings):
        container = embedded_container(tmp_path / f"app{len(opened)}", **settings)
        if generator is not None:
            container.generator.override(providers.Object(generator))
        context = served(create_app(container))
        base_url = context.__enter__()
        headers = {"Authorization": f"Bearer {KEY}"} if settings.get("api_keys") else {}
        sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
        http = httpx.Client(base_url=base_url, headers=headers, timeout=30)
        opened.append((context, sdk, http))
        return sdk, http

    yield start
    for context, sdk, http in opened:
        sdk.close()
        http.close()
        context.__exit__(None, None, None)


def stored(http) -> list[dict]:
    response = http.get("/image/", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()


def assert_openai_error(exc: openai.APIStatusError, status: int, type_: str, code: str | None) -> dict:
    assert exc.status_code == status
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == (type_, code)
    headers = exc.response.headers
    assert headers["x-request-id"] and headers["x-content-type-options"] == "nosniff"
    return body["error"]


def test_a_missing_or_wrong_key_is_an_authentication_error(serve):
    sdk, http = serve(api_keys=KEY)
    assert sdk.images.generate(prompt="with the key", size="32x32").data  # Bearer, as the SDK sends it
    wrong = sdk.with_options(api_key="not-the-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.images.generate(prompt="with a wrong key")
    assert_openai_error(caught.value, 401, "invalid_request_error", "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        wrong.images.edit(image=("a.png", png(), "image/png"), prompt="edit")
    none = httpx.post(http.base_url.join("/v1/images/generations"), json={"prompt": "no key"}, timeout=10)
    assert none.status_code == 401 and none.json()["error"]["code"] == "invalid_api_key"
    assert len(stored(http)) == 1
    outside = httpx.get(http.base_url.join("/image/"), timeout=10)  # the rest keeps its own shape
    assert outside.status_code == 401 and set(outside.json()) == {"detail", "code", "request_id"}


def test_over_the_rate_limit_is_a_rate_limit_error_with_retry_after(serve):
    sdk, http = serve(rate_limit_per_minute=1, rate_limit_burst=1)
    sdk.images.generate(prompt="the one allowed", size="32x32")
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.images.generate(prompt="one too many")
    assert_openai_error(caught.value, 429, "requests", "rate_limit_exceeded")
    assert int(caught.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):  # edits make images too: the same bucket
        sdk.images.edit(image=("a.png", png(), "image/png"), prompt="edit")
    assert len(stored(http)) == 1


def test_bodies_over_the_limits_are_bad_requests(serve):
    sdk, http = serve(max_body_bytes=2048, max_upload_bytes=64 * 1024)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(prompt="x" * 3000)
    assert_openai_error(caught.value, 400, "invalid_request_error", "payload_too_large")
    # Uploads have their own, larger limit: this edit's body is over max_body_bytes and still taken.
    assert sdk.images.edit(image=("a.png", png(), "image/png"), prompt="y" * 2100).data
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(image=("big.png", b"\x89PNG" + b"0" * 70_000, "image/png"), prompt="too big")
    assert_openai_error(caught.value, 400, "invalid_request_error", "payload_too_large")
    assert len(stored(http)) == 1


@pytest.mark.parametrize(
    ("failure", "sdk_error", "status", "type_", "code"),
    [
        (errors.GeneratorError("provider said no"), openai.InternalServerError, 502, "server_error", None),
        (errors.GeneratorTimeout(), openai.InternalServerError, 504, "server_error", "generator_timeout"),
        (
            errors.GeneratorRateLimited(retry_after=2.5),
            openai.InternalServerError,
            503,
            "server_error",
            "generator_rate_limited",
        ),
        (errors.StorageUnavailable(), openai.InternalServerError, 503, "server_error", "storage_unavailable"),
        (
            errors.ContentPolicyViolation(),
            openai.BadRequestError,
            400,
            "invalid_request_error",
            "content_policy_violation",
        ),
        (RuntimeError("secret /etc/x"), openai.InternalServerError, 500, "server_error", "internal_error"),
    ],
    ids=["generator", "timeout", "generator-rate-limited", "storage", "content-policy", "unexpected"],
)
def test_failures_are_the_sdks_exception_types_and_store_nothing(
    serve, caplog, failure, sdk_error, status, type_, code
):
    generator = ScriptedGenerator()
    generator.fail_with = failure
    sdk, http = serve(generator)
    with caplog.at_level(logging.WARNING), pytest.raises(sdk_error) as caught:
        sdk.images.generate(prompt="fails")
    error = assert_openai_error(caught.value, status, type_, code or "generator_error")
    assert "secret" not in error["message"]
    if status == 503 and code == "generator_rate_limited":
        assert caught.value.response.headers["retry-after"] == "3"
    with pytest.raises(sdk_error):
        sdk.images.edit(image=("a.png", png(), "image/png"), prompt="fails too")
    assert stored(http) == []
    if status < 500:  # the client's fault logs nothing above WARNING
        assert not [r for r in caplog.records if r.levelno > logging.WARNING]


def test_one_of_n_failing_cancels_the_others_and_stores_none(serve):
    generator = OneOfSeveralFails(count=3, failing=1, fail_with=errors.GeneratorError("the second failed"))
    sdk, http = serve(generator)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.images.generate(prompt="three, one fails", n=3)
    assert "the second failed" in caught.value.message
    assert len(generator.calls) == 3 and generator.cancelled == 2
    assert stored(http) == []


def test_a_failure_before_the_first_event_is_a_plain_error_answer(serve):
    generator = ScriptedGenerator()
    generator.fail_with = errors.GeneratorRateLimited(retry_after=1)
    sdk, http = serve(generator)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.images.generate(prompt="stream", stream=True, partial_images=2)
    assert caught.value.status_code == 503
    assert stored(http) == []


def test_a_failure_mid_stream_is_an_error_event_and_stores_nothing(serve):
    generator = PartialThenFails(errors.ContentPolicyViolation("refused after a preview"))
    sdk, http = serve(generator)
    stream = sdk.images.generate(prompt="stream", stream=True, partial_images=2)
    first = next(iter(stream))
    assert first.type == "image_generation.partial_image"
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "refused after a preview" in caught.value.message
    assert caught.value.body["code"] == "content_policy_violation"
    assert stored(http) == []


def test_a_client_that_leaves_mid_stream_cancels_the_generation(serve):
    generator = PartialThenFails(hold=True)
    sdk, http = serve(generator)
    stream = sdk.images.generate(prompt="left", stream=True, partial_images=2)
    assert next(iter(stream)).type == "image_generation.partial_image"
    stream.close()
    assert generator.cancelled.wait(10)
    assert stored(http) == []


def test_images_made_through_v1_belong_to_the_key_that_asked(serve):
    sdk, _ = serve(api_keys="alice:user:key-of-alice,bob:user:key-of-bob")
    alice, bob = sdk.with_options(api_key="key-of-alice"), sdk.with_options(api_key="key-of-bob")
    made = alice.images.generate(prompt="alice's", size="32x32", n=2)
    edited = alice.images.edit(image=("a.png", png(), "image/png"), prompt="alice's edit")
    guids = [item.model_extra["guid"] for item in [*made.data, *edited.data]]
    base_url = str(sdk.base_url).removesuffix("/v1/")
    for key, status in (("key-of-alice", 200), ("key-of-bob", 404)):
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            for guid in guids:
                answer = http.get(f"/image/{guid}")
                assert answer.status_code == status
                if status == 200:
                    assert answer.json()["owner"] == "alice"
    assert bob.images.generate(prompt="bob's", size="32x32").data

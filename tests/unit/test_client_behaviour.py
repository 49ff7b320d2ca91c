"""The client's own logic (retries, idempotency keys, errors, paging) against scripted HTTP answers.

The server is played by a function behind httpx.MockTransport so each case is exact; the same client runs
against the real service in tests/e2e/test_client_e2e.py.
"""

import json
from collections.abc import Callable
from uuid import uuid4

import httpx
import pytest

from pixyproxy.client import (
    GENERATE_TIMEOUT,
    APIError,
    AsyncPixyProxyClient,
    AuthenticationError,
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    IdempotencyConflict,
    ImageDetail,
    InvalidRequest,
    NotFound,
    PixyProxyClient,
    PixyProxyConnectionError,
    PixyProxyTimeout,
    RateLimited,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
)

NO_WAIT = RetryPolicy(max_retries=2, backoff=0.0)


def detail(prompt: str = "a fox", guid: str | None = None) -> dict:
    guid = guid or str(uuid4())
    return {
        "guid": guid,
        "prompt": prompt,
        "filename": f"{guid}.png",
        "created_at": "2026-01-02T03:04:05Z",
        "content_type": "image/png",
        "size_bytes": 10,
        "width": 256,
        "height": 256,
        "model": "m",
        "sha256": "ab" * 32,
        "a_field_from_a_newer_server": {"ignored": True},
    }


def error(status: int, code: str, message: str, request_id: str = "rid-1", **headers: str) -> httpx.Response:
    body = {"detail": message, "code": code, "request_id": request_id}
    return httpx.Response(status, json=body, headers={"x-request-id": request_id, **headers})


class Script:
    """Answers requests in order from a list of responses or exceptions, recording what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def client(self, **options) -> PixyProxyClient:
        options.setdefault("retry", NO_WAIT)
        return PixyProxyClient("http://pixy.test:8001", transport=httpx.MockTransport(self), **options)

    def async_client(self, **options) -> AsyncPixyProxyClient:
        options.setdefault("retry", NO_WAIT)
        return AsyncPixyProxyClient("http://pixy.test:8001", transport=httpx.MockTransport(self), **options)


def test_generate_sends_prompt_options_and_an_idempotency_key(monkeypatch):
    monkeypatch.setenv("PIXYPROXY_API_KEY", "sk-test-123")
    script = Script(httpx.Response(200, json=detail("a red fox")))
    with script.client() as client:
        image = client.generate("a red fox", size="512x512")
    assert isinstance(image, ImageDetail) and image.prompt == "a red fox"
    (request,) = script.requests
    assert request.method == "POST" and request.url.path == "/image/"
    assert json.loads(request.content) == {"prompt": "a red fox", "size": "512x512"}
    assert len(request.headers["idempotency-key"]) >= 32
    assert request.headers["authorization"] == "Bearer sk-test-123"


def test_each_generate_call_gets_its_own_key_and_an_explicit_key_is_used_as_given(monkeypatch):
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    script = Script(*(httpx.Response(200, json=detail()) for _ in range(3)))
    with script.client() as client:
        client.generate("one")
        client.generate("two")
        client.generate("three", idempotency_key="my-key")
    keys = [r.headers["idempotency-key"] for r in script.requests]
    assert keys[0] != keys[1] and keys[2] == "my-key"
    assert "authorization" not in script.requests[0].headers


def test_a_generation_retried_after_a_broken_connection_reuses_its_key():
    script = Script(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=detail()),
    )
    with script.client() as client:
        client.generate("a fox")
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1


def test_503_is_retried_with_retry_after_and_the_same_key():
    script = Script(
        error(503, "generator_rate_limited", "slow down", **{"retry-after": "0"}),
        httpx.Response(200, json=detail()),
    )
    with script.client() as client:
        client.generate("a fox")
    assert len(script.requests) == 2
    assert script.requests[0].headers["idempotency-key"] == script.requests[1].headers["idempotency-key"]


@pytest.mark.parametrize(
    ("status", "code", "exc_type"),
    [
        (502, "generator_error", GeneratorError),
        (504, "generator_timeout", GeneratorTimeout),
        (422, "content_policy_violation", ContentPolicyViolation),
        (422, "invalid_request", InvalidRequest),
        (409, "idempotency_conflict", IdempotencyConflict),
        (401, "unauthorized", AuthenticationError),
        (500, "internal_error", ServerError),
    ],
)
def test_errors_that_a_retry_would_not_fix_or_would_pay_again_for_are_raised_at_once(status, code, exc_type):
    script = Script(error(status, code, f"the {code} message", request_id="host-42"))
    with script.client() as client, pytest.raises(exc_type) as caught:
        client.generate("a fox")
    assert len(script.requests) == 1
    exc = caught.value
    assert (exc.status_code, exc.code, exc.detail, exc.request_id) == (
        status,
        code,
        f"the {code} message",
        "host-42",
    )
    assert "host-42" in str(exc) and f"the {code} message" in str(exc)


def test_retries_are_bounded_and_the_last_error_is_raised():
    script = Script(*(error(503, "metadata_unavailable", "db down") for _ in range(3)))
    with script.client() as client, pytest.raises(ServiceUnavailable) as caught:
        client.get(uuid4())
    assert len(script.requests) == 3  # the call and max_retries=2 retries
    assert caught.value.code == "metadata_unavailable"


def test_a_generation_is_not_retried_on_a_503_that_may_follow_a_paid_image():
    # metadata_unavailable can come after the provider made (and billed) the image: a retry would pay again.
    script = Script(error(503, "metadata_unavailable", "db down", **{"retry-after": "0"}))
    with script.client() as client, pytest.raises(ServiceUnavailable) as caught:
        client.generate("a fox")
    assert len(script.requests) == 1 and caught.value.code == "metadata_unavailable"


def test_a_retry_after_longer_than_max_wait_is_left_to_the_caller():
    script = Script(error(503, "generator_rate_limited", "later", **{"retry-after": "120"}))
    with (
        script.client(retry=RetryPolicy(max_wait=30)) as client,
        pytest.raises(GeneratorRateLimited) as caught,
    ):
        client.generate("a fox")
    assert len(script.requests) == 1 and caught.value.retry_after == 120


def test_429_is_rate_limited_and_retried():
    script = Script(
        error(429, "rate_limited", "too many", **{"retry-after": "0"}), httpx.Response(200, json=detail())
    )
    with script.client() as client:
        client.generate("a fox")
    assert len(script.requests) == 2
    script = Script(*(error(429, "rate_limited", "too many", **{"retry-after": "0"}) for _ in range(3)))
    with script.client() as client, pytest.raises(RateLimited):
        client.generate("a fox")


def test_connection_failures_become_typed_errors_after_the_retries():
    script = Script(*(httpx.ConnectError("refused") for _ in range(3)))
    with script.client() as client, pytest.raises(PixyProxyConnectionError) as caught:
        client.get(uuid4())
    assert "pixy.test" in str(caught.value) and len(script.requests) == 3
    script = Script(httpx.ReadTimeout("slow"))
    with script.client(retry=RetryPolicy(max_retries=0)) as client, pytest.raises(PixyProxyTimeout):
        client.get(uuid4())


def test_an_error_page_that_is_not_json_still_gives_a_typed_error():
    page = httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>")
    script = Script(page)
    with script.client() as client, pytest.raises(GeneratorError) as caught:
        client.get(uuid4())
    assert caught.value.code == "http_502" and "502 Bad Gateway" in caught.value.detail
    assert caught.value.request_id is None


def test_not_found_carries_the_request_id_and_the_guid_is_one_path_segment():
    script = Script(error(404, "image_not_found", "No image has that guid.", request_id="rid-404"))
    with script.client() as client, pytest.raises(NotFound) as caught:
        client.get("../../etc/passwd")
    assert caught.value.request_id == "rid-404" and isinstance(caught.value, APIError)
    assert script.requests[0].url.raw_path == b"/image/..%2F..%2Fetc%2Fpasswd"


def test_list_follows_link_pages_on_its_own_base_url():
    first, second, third = detail("1"), detail("2"), detail("3")
    # The server behind a proxy builds links with its internal host: only the query is followed.
    script = Script(
        httpx.Response(
            200,
            json=[first, second],
            headers={"link": '<http://internal:9000/image/?limit=2&cursor=abc%3D%3D>; rel="next"'},
        ),
        httpx.Response(200, json=[third]),
    )
    with script.client() as client:
        prompts = [image.prompt for image in client.list(page_size=2)]
    assert prompts == ["1", "2", "3"]
    assert [str(r.url) for r in script.requests] == [
        "http://pixy.test:8001/image/?limit=2",
        "http://pixy.test:8001/image/?limit=2&cursor=abc%3D%3D",
    ]


def test_list_is_lazy():
    script = Script(
        httpx.Response(200, json=[detail("1")], headers={"link": '</image/?limit=1&cursor=x>; rel="next"'}),
        httpx.Response(200, json=[detail("2")]),
    )
    with script.client() as client:
        images = client.list(page_size=1)
        assert next(images).prompt == "1"
        assert len(script.requests) == 1


def test_content_url_and_download(tmp_path):
    guid = str(uuid4())
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100
    script = Script(
        httpx.Response(200, content=png, headers={"content-type": "image/png"}),
        httpx.Response(200, json={"url": "http://s3.test/b/k?sig=1", "expires_at": "2026-01-01T00:15:00Z"}),
        httpx.Response(200, content=png, headers={"content-type": "image/png"}),
        error(404, "image_not_found", "No image has that guid."),
    )
    target = tmp_path / "out.png"
    with script.client() as client:
        assert client.content(guid) == png
        link = client.url(guid)
        assert link.url == "http://s3.test/b/k?sig=1" and link.expires_at is not None
        assert client.download(guid, target) == target
        with pytest.raises(NotFound):
            client.download(guid, tmp_path / "missing.png")
    assert target.read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no partial file left behind
    assert [r.url.path for r in script.requests] == [f"/image/{guid}/content", f"/image/{guid}/url"] + [
        f"/image/{guid}/content"
    ] * 2


def test_generations_wait_long_and_reads_do_not():
    script = Script(httpx.Response(200, json=detail()), httpx.Response(200, json=detail()))
    with script.client() as client:
        client.generate("a fox")
        client.get(uuid4())
    generate_timeout, read_timeout = (r.extensions["timeout"] for r in script.requests)
    assert generate_timeout["read"] >= 200 and generate_timeout == GENERATE_TIMEOUT.as_dict()
    assert read_timeout["read"] <= 60


async def test_async_client_generates_with_retry_lists_and_reads(tmp_path):
    first, second = detail("1"), detail("2")
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(200, json=first),
        httpx.Response(200, json=[first], headers={"link": '</image/?limit=1&cursor=c2>; rel="next"'}),
        httpx.Response(200, json=[second]),
        httpx.Response(200, content=b"png-bytes"),
        error(409, "idempotency_conflict", "key reused", request_id="rid-409"),
    )
    async with script.async_client() as client:
        image = await client.generate("1")
        listed = [image.prompt async for image in client.list(page_size=1)]
        saved = await client.download(image, tmp_path / "a.png")
        with pytest.raises(IdempotencyConflict) as caught:
            await client.generate("1", idempotency_key="k")
    assert str(image.guid) == first["guid"] and listed == ["1", "2"]
    assert saved.read_bytes() == b"png-bytes"
    assert script.requests[0].headers["idempotency-key"] == script.requests[1].headers["idempotency-key"]
    assert script.requests[3].url.params["cursor"] == "c2"
    assert caught.value.request_id == "rid-409"

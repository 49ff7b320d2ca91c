"""The client's image options and edit(), sync and async, against scripted HTTP answers."""

import json
from uuid import uuid4

import httpx
import pytest

from pixyproxy.client import AsyncPixyProxyClient, InvalidRequest, PixyProxyClient, RetryPolicy

NO_WAIT = RetryPolicy(max_retries=2, backoff=0.0)
PARENT, MASK, REFERENCE = uuid4(), uuid4(), uuid4()
OPTIONS = {
    "model": "gpt-image-2.6-flare",
    "size": "1536x1024",
    "quality": "high",
    "background": "transparent",
    "output_format": "webp",
    "output_compression": 70,
    "moderation": "low",
    "negative_prompt": "people, text",
}


def answer(body: dict, **extra) -> dict:
    guid = str(uuid4())
    return {
        "guid": guid,
        "prompt": body["prompt"],
        "filename": f"{guid}.webp",
        "created_at": "2026-12-01T12:00:00Z",
        "content_type": "image/webp",
        "size_bytes": 10,
        "width": 1536,
        "height": 1024,
        "model": "gpt-image-2.6-flare",
        "sha256": "ab" * 32,
        "output_format": "webp",
        "background": "transparent",
        **extra,
    }


class Server:
    """Records each request; fails the first `fail` of them with a 503 the provider caused."""

    def __init__(self, fail: int = 0) -> None:
        self.requests: list[httpx.Request] = []
        self.fail = fail

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail:
            error = {"detail": "slow down", "code": "generator_rate_limited", "request_id": "r"}
            return httpx.Response(503, json=error, headers={"Retry-After": "0"})
        body = json.loads(request.content)
        extra = {"parent_guid": str(PARENT)} if request.url.path.endswith("/edits") else {}
        return httpx.Response(200, json=answer(body, **extra))


def test_generate_sends_every_option_and_reads_the_new_fields():
    server = Server()
    with PixyProxyClient("http://pixy", transport=httpx.MockTransport(server), retry=NO_WAIT) as client:
        image = client.generate("a fox", **OPTIONS)
    assert json.loads(server.requests[0].content) == {"prompt": "a fox", **OPTIONS}
    assert (image.output_format, image.background, image.content_type) == (
        "webp",
        "transparent",
        "image/webp",
    )


def test_edit_posts_to_the_images_edits_with_mask_and_references_and_retries_with_one_key():
    server = Server(fail=1)
    with PixyProxyClient("http://pixy", transport=httpx.MockTransport(server), retry=NO_WAIT) as client:
        image = client.edit(PARENT, "make it night", mask=MASK, references=[REFERENCE], output_format="webp")
    first, second = server.requests
    assert first.method == "POST" and first.url.path == f"/image/{PARENT}/edits"
    assert json.loads(first.content) == {
        "prompt": "make it night",
        "output_format": "webp",
        "mask_guid": str(MASK),
        "reference_guids": [str(REFERENCE)],
    }
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert image.parent_guid == PARENT


async def test_the_async_client_has_the_same_options_and_edit():
    server = Server()
    async with AsyncPixyProxyClient("http://pixy", transport=httpx.MockTransport(server), retry=NO_WAIT) as c:
        made = await c.generate("a fox", **OPTIONS)
        edited = await c.edit(made, "make it night", idempotency_key="mine-1")
    assert json.loads(server.requests[0].content) == {"prompt": "a fox", **OPTIONS}
    assert server.requests[1].url.path == f"/image/{made.guid}/edits"
    assert server.requests[1].headers["idempotency-key"] == "mine-1"
    assert edited.parent_guid == PARENT


def test_edits_and_jobs_send_a_negative_prompt_too():
    server = Server()
    with PixyProxyClient("http://pixy", transport=httpx.MockTransport(server), retry=NO_WAIT) as client:
        client.edit(PARENT, "make it night", negative_prompt="moon")
    assert json.loads(server.requests[0].content) == {"prompt": "make it night", "negative_prompt": "moon"}
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:  # only what was sent matters here
        sent.append(request)
        error = {"detail": "negative_prompt: not taken", "code": "invalid_request", "request_id": "r"}
        return httpx.Response(422, json=error)

    refusing = PixyProxyClient("http://pixy", transport=httpx.MockTransport(refuse), retry=NO_WAIT)
    with refusing as client, pytest.raises(InvalidRequest, match="negative_prompt"):
        client.submit("a fox", n=2, negative_prompt="fog")
    assert json.loads(sent[0].content) == {"prompt": "a fox", "negative_prompt": "fog", "n": 2}


def test_an_unknown_option_is_a_type_error_before_anything_is_sent():
    from pixyproxy.client import _base

    with pytest.raises(TypeError, match="colour"):
        _base.generation_body("x", colour="red")

"""The client's jobs logic against scripted HTTP answers (httpx.MockTransport): the SSE parsing, typed
events, a dropped event stream opened again, one Idempotency-Key across submit retries. The same client
runs against the real service in tests/e2e/test_client_jobs_e2e.py."""

import json
from uuid import uuid4

import httpx
import pytest

from pixyproxy.client import (
    AsyncPixyProxyClient,
    DoneEvent,
    PartialImageEvent,
    PixyProxyClient,
    PixyProxyConnectionError,
    RetryPolicy,
    StatusEvent,
)
from pixyproxy.client._base import SSEParser, job_event

NO_WAIT = RetryPolicy(max_retries=2, backoff=0.0)
JOB_ID = str(uuid4())


def job(status: str = "queued") -> dict:
    return {
        "id": JOB_ID,
        "status": status,
        "created_at": "2026-01-02T03:04:05Z",
        "request": {"prompt": "a fox"},
        "images": [],
        "error": None,
        "attempts": 1,
        "a_field_from_a_newer_server": True,
    }


def sse(*events: tuple[str, dict]) -> bytes:
    text = ": ping - 2026-01-02 03:04:05\r\n\r\n"
    for name, data in events:
        text += f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n"
    return text.encode()


def parse(text: str) -> list[tuple[str, str]]:
    parser, out = SSEParser(), []
    for line in text.splitlines():
        got = parser.feed(line)
        if got:
            out.append(got)
    got = parser.feed("")
    if got:
        out.append(got)
    return out


def test_sse_parser_fields_comments_and_multiline_data() -> None:
    text = (
        ': keep-alive\n\nevent: status\ndata: {"a":\ndata: 1}\n\n'
        "data: plain\n\nevent: lonely\n\nid: 7\nretry: 10\n"
    )
    assert parse(text) == [("status", '{"a":\n1}'), ("message", "plain")]
    assert parse("event:status\ndata:x\n\n") == [("status", "x")]  # no space after the colon


def test_events_are_typed_and_unknown_ones_skipped() -> None:
    assert isinstance(job_event("status", json.dumps(job())), StatusEvent)
    done = job_event("done", json.dumps(job("succeeded")))
    assert isinstance(done, DoneEvent) and done.job.succeeded
    partial = job_event("partial_image", json.dumps({"image": 1, "index": 2, "b64_json": "iVBORw=="}))
    assert isinstance(partial, PartialImageEvent) and partial.data.startswith(b"\x89PNG")
    assert job_event("something_new", "{}") is None


def test_a_dropped_event_stream_is_opened_again() -> None:
    answers = [
        sse(("status", job("queued"))),  # the connection ends before the job does
        sse(
            ("status", job("running")),
            ("partial_image", {"index": 0, "b64_json": "AA=="}),
            ("status", job("succeeded")),
            ("done", job("succeeded")),
        ),
    ]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            200, content=answers[len(calls) - 1], headers={"content-type": "text/event-stream"}
        )

    with PixyProxyClient("http://pixy.test", transport=httpx.MockTransport(handler), retry=NO_WAIT) as client:
        events = list(client.events(JOB_ID))
    assert [type(e).__name__ for e in events] == [
        "StatusEvent",
        "StatusEvent",
        "PartialImageEvent",
        "StatusEvent",
        "DoneEvent",
    ]
    assert len(calls) == 2 and calls[0].url.path == f"/image/jobs/{JOB_ID}/events"
    assert calls[0].headers["accept"] == "text/event-stream"


def test_an_event_stream_that_keeps_dropping_gives_up() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=sse(("status", job())), headers={"content-type": "text/event-stream"}
        )

    transport = httpx.MockTransport(handler)
    with (
        PixyProxyClient("http://pixy.test", transport=transport, retry=NO_WAIT) as client,
        pytest.raises(PixyProxyConnectionError, match="closed before the job ended"),
    ):
        list(client.events(JOB_ID))


def test_submit_retries_a_503_with_the_same_idempotency_key() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"detail": "down", "code": "metadata_unavailable"})
        return httpx.Response(202, json=job(), headers={"location": f"/image/jobs/{JOB_ID}"})

    with PixyProxyClient("http://pixy.test", transport=httpx.MockTransport(handler), retry=NO_WAIT) as client:
        submitted = client.submit("a fox", n=2, webhook_url="https://hooks.example.com/in", partial_images=1)
    assert str(submitted.id) == JOB_ID and submitted.status == "queued"
    assert len(seen) == 2
    assert seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]
    assert json.loads(seen[0].content) == {
        "prompt": "a fox",
        "n": 2,
        "webhook_url": "https://hooks.example.com/in",
        "partial_images": 1,
    }


async def test_async_wait_polls_until_the_job_ends() -> None:
    states = iter(["queued", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=job(next(states)))

    transport = httpx.MockTransport(handler)
    async with AsyncPixyProxyClient("http://pixy.test", transport=transport, retry=NO_WAIT) as client:
        done = await client.wait(JOB_ID, poll_interval=0)
    assert done.succeeded

"""The Python client's jobs API (submit, job, jobs, wait, events, cancel), sync and async, against the
real service in a subprocess (offline generator, which streams partial images), with a webhook receiver
verifying what the server sends."""

import asyncio
import contextlib
import time

import pytest

from pixyproxy.client import (
    AsyncPixyProxyClient,
    DoneEvent,
    InvalidRequest,
    Job,
    JobFinished,
    NotFound,
    PartialImageEvent,
    PixyProxyClient,
    PixyProxyTimeout,
    StatusEvent,
)
from tests.e2e.server import run_server
from tests.support.webhook_receiver import SECRET, webhook_receiver

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {
    "PIXYPROXY_WEBHOOK_SECRET": SECRET,
    "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "true",
    "PIXYPROXY_JOB_POLL_SECONDS": "0.05",
    # Long enough that a job is seen queued and running, and can be canceled while it runs; a wait of
    # 0.1 s always ends before a job does.
    "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.4",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("client-jobs"), ENV) as running:
        yield running


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    with PixyProxyClient(server.base_url) as client:
        yield client


def test_submit_then_wait_gives_the_n_images(client) -> None:
    job = client.submit("a lighthouse at dusk", n=3, size="256x256")
    assert isinstance(job, Job) and job.status in ("queued", "running")
    assert job.request["n"] == 3
    done = client.wait(job, poll_interval=0.05, timeout=60)
    assert done.succeeded and done.finished and done.error is None
    assert len(done.images) == 3 and done.attempts == 1
    assert all(client.content(image).startswith(PNG) for image in done.images)
    assert client.job(job.id) == done


def test_events_show_queued_or_running_partials_and_done(client) -> None:
    job = client.submit("a fox in snow", partial_images=2)
    events = list(client.events(job))
    assert isinstance(events[0], StatusEvent) and events[0].job.id == job.id
    statuses = [e.job.status for e in events if isinstance(e, StatusEvent)]
    assert statuses[-1] == "succeeded" and "running" in statuses
    partials = [e for e in events if isinstance(e, PartialImageEvent)]
    assert [p.index for p in partials] == [0, 1]
    assert all(p.data.startswith(PNG) for p in partials)
    assert isinstance(events[-1], DoneEvent) and events[-1].job.succeeded


def test_wait_with_events(client) -> None:
    job = client.submit("a kite over the sea")
    assert client.wait(job, use_events=True, timeout=60).succeeded


def test_wait_times_out_on_a_job_still_running(client) -> None:
    job = client.submit("a slow one", n=10)  # the offline latency alone outlasts the wait
    with pytest.raises(PixyProxyTimeout, match="had not ended"):
        client.wait(job, timeout=0.1, poll_interval=0.05)
    with contextlib.suppress(JobFinished):  # only tidying up: the job may have ended by now
        client.cancel(job)


def test_wait_with_events_times_out_on_a_job_still_running(client) -> None:
    job = client.submit("a slow one, followed", n=10)  # the offline latency alone outlasts the wait
    started = time.monotonic()
    with pytest.raises(PixyProxyTimeout, match="had not ended"):
        client.wait(job, timeout=0.1, use_events=True)
    assert time.monotonic() - started < 2.5  # not when the job ends
    with contextlib.suppress(JobFinished):  # only tidying up: the job may have ended by now
        client.cancel(job)


def test_cancel_then_cancel_again_is_job_finished(client) -> None:
    job = client.submit("to be canceled", n=10)
    canceled = client.cancel(job)
    assert canceled.status == "canceled"
    with pytest.raises(JobFinished) as caught:
        client.cancel(job)
    assert caught.value.status_code == 409 and caught.value.code == "job_finished"
    assert client.wait(job, timeout=10).status == "canceled"


def test_jobs_lists_newest_first_and_filters(client) -> None:
    first = client.submit("first")
    second = client.submit("second")
    client.wait(second, timeout=60, poll_interval=0.05)
    client.wait(first, timeout=60, poll_interval=0.05)
    listed = [j.id for j in client.jobs(page_size=1)]
    assert listed.index(second.id) < listed.index(first.id)
    assert all(j.status == "succeeded" for j in client.jobs(status="succeeded"))


def test_errors_are_typed(client) -> None:
    with pytest.raises(NotFound):
        client.job("00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidRequest) as caught:
        client.submit("x", n=11)
    assert caught.value.status_code == 422
    with pytest.raises(InvalidRequest) as caught:
        client.submit("x", webhook_url="ftp://hooks.example.com/")
    assert caught.value.code == "invalid_webhook_url"


def test_one_idempotency_key_gives_one_job(client) -> None:
    a = client.submit("same", idempotency_key="client-jobs-key-1")
    b = client.submit("same", idempotency_key="client-jobs-key-1")
    assert a.id == b.id


def test_submit_with_a_webhook_url_is_posted_when_it_ends(client) -> None:
    with webhook_receiver() as receiver:
        job = client.submit("told by webhook", webhook_url=receiver.url)
        (got,) = receiver.wait(1, timeout=30)
    assert got.verified and got.payload["type"] == "image.job.succeeded"
    assert got.payload["data"]["id"] == str(job.id)


async def test_the_async_client_does_the_same(server, monkeypatch) -> None:
    monkeypatch.delenv("PIXYPROXY_API_KEY", raising=False)
    async with AsyncPixyProxyClient(server.base_url) as client:
        jobs = await asyncio.gather(*(client.submit(f"async {i}", n=2) for i in range(3)))
        done = await asyncio.gather(*(client.wait(j, poll_interval=0.05, timeout=60) for j in jobs))
        assert all(d.succeeded and len(d.images) == 2 for d in done)
        job = await client.submit("async streamed", partial_images=1)
        events = [e async for e in client.events(job)]
        assert isinstance(events[0], StatusEvent) and isinstance(events[-1], DoneEvent)
        assert any(isinstance(e, PartialImageEvent) for e in events)
        assert (await client.wait(job, use_events=True, timeout=30)).succeeded
        listed = [j.id async for j in client.jobs(page_size=2)]
        assert job.id in listed
        slow = await client.submit("async canceled", n=10)
        assert (await client.cancel(slow)).status == "canceled"
        with pytest.raises(JobFinished):
            await client.cancel(slow)
        slow = await client.submit("async slow", n=10)  # the offline latency alone outlasts the wait
        started = time.monotonic()
        with pytest.raises(PixyProxyTimeout):
            await client.wait(slow, timeout=0.1, use_events=True)
        assert time.monotonic() - started < 2.5
        # Only tidying up: on a busy machine the job may have finished by now.
        with contextlib.suppress(JobFinished):
            await client.cancel(slow)

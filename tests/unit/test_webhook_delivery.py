"""Webhook delivery end to end inside one process: the dispatcher, the SQLite outbox, the real httpx
sender and a real receiver on 127.0.0.1 that checks every signature with standardwebhooks."""

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from pixyproxy.adapters.dns_resolver import SystemHostResolver
from pixyproxy.adapters.webhook_sender import HttpWebhookSender
from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.webhook_dispatcher import WebhookDispatcher
from pixyproxy.domain.webhooks import DELIVERED, FAILED, PENDING, RetryPolicy, new_delivery
from tests.e2e.server import free_port
from tests.support.sql import make_outbox, sqlite_url
from tests.support.webhook_receiver import SECRET, webhook_receiver

JOB = {"id": "0b7a6f8e-0000-4000-8000-000000000001", "status": "succeeded", "images": [], "attempts": 1}
FAST = RetryPolicy(max_attempts=4, base_seconds=0.01, max_delay_seconds=0.05, jitter=0.0)


class StaticResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.get(host, [])


@pytest.fixture
async def outbox(tmp_path):
    store = make_outbox(sqlite_url(tmp_path / "meta.db"))
    await store.init()
    yield store
    await store.close()


@pytest.fixture
async def sender():
    s = HttpWebhookSender(SECRET, connect_timeout_seconds=1.0, timeout_seconds=2.0, max_connections=8)
    await s.init()
    yield s
    await s.close()


def dispatcher(outbox, sender, *, resolver=None, allow_private=True, retry=FAST, timeout=2.0, **kw):
    return WebhookDispatcher(
        outbox,
        sender,
        resolver or SystemHostResolver(5.0),
        retry=retry,
        allow_private=allow_private,
        timeout_seconds=timeout,
        lease_seconds=max(timeout * 3, 5.0),
        poll_seconds=0.05,
        rand=lambda: 0.5,
        **kw,
    )


async def wait_for_status(outbox, job_id: str, status: str, timeout: float = 10.0):
    # The outcome is written by the dispatcher's own task after the receiver answered: poll the row.
    async with asyncio.timeout(timeout):
        while True:
            delivery = await outbox.get_for_job(job_id)
            if delivery is not None and delivery.status == status:
                return delivery
            await asyncio.sleep(0.01)


async def test_a_delivery_is_signed_so_standardwebhooks_verifies_it(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        worker = dispatcher(outbox, sender)
        await worker.init()
        try:
            stored = await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
            (got,) = await receiver.wait_async(1)
            done = await wait_for_status(outbox, JOB["id"], DELIVERED)
        finally:
            await worker.close()
    assert got.verified
    assert got.payload == {"type": "image.job.succeeded", "data": JOB}
    assert got.headers["webhook-id"] == stored.id
    assert got.headers["content-type"] == "application/json"
    version, signature = got.headers["webhook-signature"].split(",", 1)
    assert version == "v1" and len(base64.b64decode(signature)) == 32  # HMAC-SHA256
    # Verified with the package as Ducky would, and refused with another secret.
    Webhook(SECRET).verify(got.body, got.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"another secret").decode()).verify(got.body, got.headers)
    assert (done.attempts, done.last_status_code) == (1, 204)


@pytest.mark.parametrize("first", [500, 503, 408, 429])
async def test_retried_after_a_failure_then_delivered_with_the_same_webhook_id(outbox, sender, first) -> None:
    with webhook_receiver(script=[first]) as receiver:
        worker = dispatcher(outbox, sender)
        await worker.init()
        try:
            await worker.announce(JOB["id"], receiver.url, "failed", {**JOB, "status": "failed"})
            first_try, second_try = await receiver.wait_async(2)
            done = await wait_for_status(outbox, JOB["id"], DELIVERED)
        finally:
            await worker.close()
    assert first_try.verified and second_try.verified
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"] == done.id
    assert first_try.body == second_try.body
    assert second_try.payload["type"] == "image.job.failed"
    assert (done.attempts, done.last_status_code) == (2, 204)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 301])
async def test_other_4xx_and_redirects_are_not_retried(outbox, sender, status) -> None:
    with webhook_receiver(script=[status]) as receiver:
        worker = dispatcher(outbox, sender)
        await worker.announce(JOB["id"], receiver.url, "canceled", {**JOB, "status": "canceled"})
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0  # nothing left due
        assert len(receiver.received) == 1
    done = await outbox.get_for_job(JOB["id"])
    assert (done.status, done.attempts, done.last_status_code) == (FAILED, 1, status)
    assert "not retried" in done.last_error


async def test_gives_up_after_max_attempts(outbox, sender) -> None:
    with webhook_receiver(script=[500] * 10) as receiver:
        worker = dispatcher(outbox, sender, retry=RetryPolicy(3, 0.01, 0.02, 0.0))
        await worker.init()
        try:
            await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
            done = await wait_for_status(outbox, JOB["id"], FAILED)
        finally:
            await worker.close()
        assert len(receiver.received) == 3
    assert done.attempts == 3 and "gave up after 3 attempts" in done.last_error


async def test_refused_connection_is_retried(outbox, sender) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    worker = dispatcher(outbox, sender)
    await worker.announce(JOB["id"], url, "succeeded", JOB)
    await worker.deliver_due()
    pending = await outbox.get_for_job(JOB["id"])
    assert (pending.status, pending.attempts, pending.last_status_code) == (PENDING, 1, None)
    assert "ConnectError" in pending.last_error
    assert pending.next_attempt_at > pending.created_at


async def test_a_receiver_that_does_not_answer_in_time_is_retried(outbox, sender) -> None:
    import threading

    with webhook_receiver() as receiver:
        receiver.hold = threading.Event()
        worker = dispatcher(outbox, sender, timeout=0.3)
        await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
        await worker.deliver_due()
        receiver.hold.set()
    pending = await outbox.get_for_job(JOB["id"])
    assert (pending.status, pending.attempts) == (PENDING, 1)
    assert "0.3 s" in pending.last_error or "timed out" in pending.last_error


async def test_a_private_address_is_refused_at_delivery(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        # Stored while private targets were allowed (or by a name that resolved elsewhere then).
        worker = dispatcher(outbox, sender, allow_private=False)
        await outbox.add(new_delivery(JOB["id"], receiver.url, "succeeded", JOB, utc_now()))
        await worker.deliver_due()
        assert receiver.received == []
    done = await outbox.get_for_job(JOB["id"])
    assert done.status == FAILED and "private" in done.last_error


async def test_a_name_resolving_to_a_private_address_at_delivery_is_refused(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        resolver = StaticResolver({"hooks.example.com": ["93.184.216.34", "127.0.0.1"]})
        worker = dispatcher(outbox, sender, resolver=resolver, allow_private=False)
        url = f"http://hooks.example.com:{receiver.port}/hook"
        await outbox.add(new_delivery(JOB["id"], url, "succeeded", JOB, utc_now()))
        await worker.deliver_due()
        assert receiver.received == []
    done = await outbox.get_for_job(JOB["id"])
    assert done.status == FAILED and "resolves to a private" in done.last_error


async def test_the_connection_goes_to_the_checked_address_under_the_host_name(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        # A name no DNS knows: reaching the receiver proves the sender used the checked address.
        resolver = StaticResolver({"hooks.pixyproxy.test": ["127.0.0.1"]})
        worker = dispatcher(outbox, sender, resolver=resolver)
        await worker.announce(JOB["id"], f"http://hooks.pixyproxy.test:{receiver.port}/in", "succeeded", JOB)
        await worker.deliver_due()
        (got,) = receiver.received
    assert got.verified and got.path == "/in"
    assert got.headers["host"] == f"hooks.pixyproxy.test:{receiver.port}"
    assert resolver.asked == ["hooks.pixyproxy.test"]


async def test_a_name_that_does_not_resolve_is_retried(outbox, sender) -> None:
    worker = dispatcher(outbox, sender, resolver=StaticResolver({}))
    await worker.announce(JOB["id"], "https://hooks.pixyproxy.test/in", "succeeded", JOB)
    await worker.deliver_due()
    pending = await outbox.get_for_job(JOB["id"])
    assert pending.status == PENDING and "does not resolve" in pending.last_error


async def test_announcing_a_job_twice_sends_one_webhook(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        worker = dispatcher(outbox, sender)
        first = await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
        again = await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
        assert again.id == first.id
        await worker.deliver_due()
        await worker.deliver_due()
        assert len(receiver.received) == 1


async def test_deliveries_survive_a_restart(tmp_path, sender) -> None:
    path = tmp_path / "meta.db"
    before = make_outbox(sqlite_url(path))
    await before.init()
    # The process ends right after the job ended: the row is written, nothing was sent.
    stored = await dispatcher(before, sender).announce(JOB["id"], "http://127.0.0.1:9/x", "succeeded", JOB)
    await before.close()
    with webhook_receiver() as receiver:
        after = make_outbox(sqlite_url(path))
        await after.init()
        # Same job, same URL row: point it at the receiver that is up now.
        await after.db.execute("UPDATE webhook_deliveries SET url = :url", {"url": receiver.url})
        worker = dispatcher(after, sender)
        await worker.init()
        try:
            (got,) = await receiver.wait_async(1)
            await wait_for_status(after, JOB["id"], DELIVERED)
        finally:
            await worker.close()
            await after.close()
    assert got.verified and got.headers["webhook-id"] == stored.id


async def test_a_lease_left_by_a_dead_process_is_taken_over(outbox, sender) -> None:
    with webhook_receiver() as receiver:
        stored = new_delivery(JOB["id"], receiver.url, "succeeded", JOB, utc_now())
        await outbox.add(stored)
        now = utc_now()
        (taken,) = await outbox.claim_due("dead-process", now, 10, now + timedelta(seconds=60))
        assert await dispatcher(outbox, sender).deliver_due() == 0  # still leased
        # A minute later (the clock moved on, not the test waiting) the lease has run out.
        later = dispatcher(outbox, sender, clock=lambda: utc_now() + timedelta(seconds=61))
        assert await later.deliver_due() == 1
        (got,) = receiver.received
    assert got.headers["webhook-id"] == stored.id == taken.id
    # The dead process's late outcome is refused: the lease is no longer its own.
    assert not await outbox.record_attempt("dead-process", taken)
    assert (await outbox.get(stored.id)).status == DELIVERED


async def test_shutdown_gives_leases_back(outbox, sender) -> None:
    import threading

    with webhook_receiver() as receiver:
        receiver.hold = threading.Event()
        worker = dispatcher(outbox, sender, timeout=5.0)
        await worker.init()
        await worker.announce(JOB["id"], receiver.url, "succeeded", JOB)
        await receiver.wait_async(1)
        await worker.close()  # mid-attempt
        receiver.hold.set()
        now = utc_now()
        again = await outbox.claim_due("next-process", now, 10, now + timedelta(seconds=30))
    assert [d.job_id for d in again] == [JOB["id"]]


def test_the_payload_is_the_type_and_the_job() -> None:
    delivery = new_delivery("j1", "https://hooks.example.com/", "canceled", {"id": "j1", "n": "é"}, utc_now())
    assert json.loads(delivery.payload) == {"type": "image.job.canceled", "data": {"id": "j1", "n": "é"}}
    assert delivery.id.startswith("msg_") and delivery.event_type == "image.job.canceled"


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy()
    waits = [policy.delay(k) for k in range(1, 8)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600]
    # Eight attempts reach about two hours after the first.
    assert 115 * 60 <= sum(waits) <= 130 * 60
    assert policy.delay(1, rand=0.0) == pytest.approx(48) and policy.delay(1, rand=0.999) == pytest.approx(
        72, 0.01
    )
    assert policy.delay(1, retry_after=300) == 300
    assert policy.delay(1, retry_after=10**6) == 3600


async def test_the_notifier_announces_a_job_with_a_webhook_url_as_get_renders_it(outbox, sender) -> None:
    from uuid import uuid4

    from pixyproxy.domain.jobs_models import Job, JobRequest, JobStatus
    from pixyproxy.domain.webhook_dispatcher import WebhookNotifier

    now = utc_now()
    url = "https://hooks.example.com/in"
    job = Job(
        id=uuid4(),
        status=JobStatus.failed,
        created_at=now,
        finished_at=now,
        request=JobRequest(prompt="a fox", webhook_url=url),
        attempts=1,
        owner="ducky",
    )
    notifier = WebhookNotifier(dispatcher(outbox, sender))
    await notifier.job_finished(job)
    await notifier.job_finished(job)  # the sweep may hand the same end on again
    stored = await outbox.get_for_job(str(job.id))
    payload = json.loads(stored.payload)
    assert payload == {"type": "image.job.failed", "data": json.loads(job.model_dump_json())}
    assert "owner" not in payload["data"]  # kept, never shown
    plain = job.model_copy(update={"id": uuid4(), "request": JobRequest(prompt="no hook")})
    await notifier.job_finished(plain)
    assert await outbox.get_for_job(str(plain.id)) is None


async def test_without_a_secret_the_notifier_sends_nothing_and_warns(caplog) -> None:
    from uuid import uuid4

    from pixyproxy.domain.jobs_models import Job, JobRequest, JobStatus
    from pixyproxy.domain.webhook_dispatcher import WebhookNotifier

    now = utc_now()
    job = Job(
        id=uuid4(),
        status=JobStatus.succeeded,
        created_at=now,
        request=JobRequest(prompt="a fox", webhook_url="https://hooks.example.com/in"),
    )
    await WebhookNotifier(None).job_finished(job)
    assert "PIXYPROXY_WEBHOOK_SECRET" in caplog.text


async def test_attempts_are_counted_in_the_metrics_by_outcome(outbox, sender) -> None:
    from pixyproxy.adapters.prometheus_metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    with webhook_receiver(script=[500, 400]) as receiver:
        # A minute before any retry, so job-a's second attempt stays out of the later passes.
        worker = dispatcher(outbox, sender, metrics=metrics, retry=RetryPolicy(4, 60.0, 60.0, 0.0))
        await worker.announce("job-a", receiver.url, "succeeded", JOB)
        await worker.deliver_due()  # 500: retrying
        await worker.announce("job-b", receiver.url, "succeeded", JOB)
        await worker.deliver_due()  # job-b's 400: failed (job-a not due yet)
        await worker.announce("job-c", receiver.url, "succeeded", JOB)
        await worker.deliver_due()  # 204: delivered
    body = metrics.render()[0].decode()
    for outcome in ("retrying", "failed", "delivered"):
        assert f'pixyproxy_webhook_attempts_total{{outcome="{outcome}"}} 1.0' in body
    assert 'pixyproxy_webhook_attempt_duration_seconds_count{outcome="delivered"} 1.0' in body

"""Fair shares of the delivery slots: 130 receivers that accept and never answer, and one live receiver
of another tenant (or another origin) still gets its webhook within a second of its job's end."""

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from pixyproxy.adapters.dns_resolver import SystemHostResolver
from pixyproxy.adapters.webhook_sender import HttpWebhookSender
from pixyproxy.domain.webhook_dispatcher import WebhookDispatcher
from pixyproxy.domain.webhook_fairness import FairShares, origin_of
from pixyproxy.domain.webhooks import DELIVERED, PENDING, RetryPolicy
from tests.support.silent_server import SilentServer, silent_server
from tests.support.webhook_receiver import SECRET, webhook_receiver
from tests.unit.test_webhook_delivery import JOB, outbox, wait_for_status  # noqa: F401

DEAD = 130
CONCURRENCY = 64


@pytest.fixture
async def sender():
    """A connection per slot, as the container builds it."""
    s = HttpWebhookSender(
        SECRET, connect_timeout_seconds=1.0, timeout_seconds=10.0, max_connections=CONCURRENCY
    )
    await s.init()
    yield s
    await s.close()


def test_origins_make_the_port_explicit_and_ignore_case_and_path():
    assert origin_of("https://Hooks.Example.com/a?b=c") == "https://hooks.example.com:443"
    assert origin_of("http://hooks.example.com:8080/x") == "http://hooks.example.com:8080"
    assert origin_of("http://[::1]:9/") == "http://::1:9"


def test_shares_cap_a_tenant_and_an_origin_and_come_back():
    shares = FairShares(per_tenant=2, per_origin=3)
    held = [shares.take("ann", f"http://h{i}.example/") for i in range(2)]
    assert all(held) and shares.take("ann", "http://h9.example/") is None  # ann's share is full
    assert shares.take("bob", "http://h9.example/") is not None
    shares.give_back(held[0])  # type: ignore[arg-type]
    assert shares.take("ann", "http://h9.example/") is not None
    same_origin = [shares.take(None, "http://one.example/") for _ in range(3)]
    assert all(same_origin) and shares.take(None, "http://one.example/x") is None
    assert shares.take(None, "http://one.example:81/") is not None  # another port, another receiver


@contextlib.contextmanager
def silent_servers(count: int) -> Iterator[list[SilentServer]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(silent_server()) for _ in range(count)]


def accepted(servers: list[SilentServer]) -> int:
    return sum(len(s.accepted) for s in servers)


async def until(condition, timeout: float = 10.0) -> None:
    # The dead receivers are other threads' sockets: nothing to await but their count.
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("dead_tenant", "origins", "live_tenant", "cap"),
    [
        ("ann", 10, "bob", CONCURRENCY // 4),  # one tenant's dead receivers on ten origins
        (None, 1, None, CONCURRENCY // 8),  # keys off: one origin's dead receivers
    ],
    ids=["per-tenant", "per-origin"],
)
async def test_dead_receivers_delay_only_their_own(outbox, sender, dead_tenant, origins, live_tenant, cap):  # noqa: F811
    with silent_servers(origins) as dead, webhook_receiver() as live:
        worker = WebhookDispatcher(
            outbox,
            sender,
            SystemHostResolver(5.0),
            retry=RetryPolicy(),
            allow_private=True,
            timeout_seconds=10.0,  # the default: each dead attempt holds its slot 10 s
            lease_seconds=30.0,
            poll_seconds=0.05,
            concurrency=CONCURRENCY,
        )
        await worker.init()
        try:
            for i in range(DEAD):
                url = f"http://127.0.0.1:{dead[i % origins].port}/hook/{i}"
                await worker.announce(f"dead-{i}", url, "succeeded", {**JOB, "id": f"dead-{i}"}, dead_tenant)
            await until(lambda: accepted(dead) >= cap)
            await until(lambda: worker._claims._wake.is_set() is False and len(worker._in_flight) == cap)

            ended = time.monotonic()
            await worker.announce("live-1", live.url, "succeeded", {**JOB, "id": "live-1"}, live_tenant)
            (got,) = await live.wait_async(1, timeout=10)
            took = time.monotonic() - ended
            assert got.verified
            assert took < 1.0, took
            assert (await wait_for_status(outbox, "live-1", DELIVERED)).attempts == 1
            assert accepted(dead) <= cap  # the dead ones never held more than their share
            waiting = await outbox.get_for_job(f"dead-{DEAD - 1}")
            assert waiting is not None and waiting.status == PENDING and waiting.attempts == 0
        finally:
            await worker.close()

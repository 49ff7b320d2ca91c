"""The WebhookOutbox port, run against SQLite and MySQL: stored once per job, claimed under a lease by
one claimant at a time, outcomes written only by the lease holder."""

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.webhooks import DELIVERED, PENDING, new_delivery
from tests.support.sql import make_outbox, sqlite_url

JOB = {"id": "j", "status": "succeeded", "request": {"prompt": "a fox ✨ in snow"}}


def make_mysql_outbox(url: str):
    return make_outbox(url, pool_max_size=4)


@pytest.fixture
async def sqlite_outbox(tmp_path):
    outbox = make_outbox(sqlite_url(tmp_path / "meta.db"))
    await outbox.init()
    await outbox.init()  # a second start changes nothing
    yield outbox
    await outbox.close()


@pytest.fixture
async def mysql_outbox(mysql_url):
    outbox = make_mysql_outbox(mysql_url)
    await outbox.init()
    await outbox.init()
    yield outbox
    await outbox.close()


@pytest.fixture(params=["sqlite_outbox", "mysql_outbox"])
def outbox(request):
    return request.getfixturevalue(request.param)


def delivery(job_id: str = "job-1", at=None):
    # Due a second ago unless told: a claim at a `now` taken just before finds it due.
    at = at or utc_now() - timedelta(seconds=1)
    return new_delivery(job_id, "https://hooks.example.com/in", "succeeded", {**JOB, "id": job_id}, at)


async def test_stored_once_per_job_and_read_back_exactly(outbox) -> None:
    first = delivery()
    assert await outbox.add(first)
    assert not await outbox.add(delivery())  # the same job announced again
    got = await outbox.get(first.id)
    assert got == first
    assert await outbox.get_for_job("job-1") == first
    assert await outbox.get("msg_unknown") is None


async def test_claims_only_due_and_unleased_deliveries_oldest_first(outbox) -> None:
    now = utc_now()
    await outbox.add(delivery("later", now + timedelta(minutes=5)))
    await outbox.add(delivery("second", now - timedelta(seconds=1)))
    await outbox.add(delivery("first", now - timedelta(seconds=2)))
    claimed = await outbox.claim_due("a", now, 10, now + timedelta(seconds=30))
    assert [d.job_id for d in claimed] == ["first", "second"]
    assert await outbox.claim_due("b", now, 10, now + timedelta(seconds=30)) == []
    # Once the lease has run out, another claimant gets them.
    after = now + timedelta(seconds=31)
    assert {d.job_id for d in await outbox.claim_due("b", after, 1, after + timedelta(seconds=30))} <= {
        "first",
        "second",
    }


async def test_only_the_lease_holder_writes_the_outcome(outbox) -> None:
    now = utc_now()
    await outbox.add(delivery())
    (mine,) = await outbox.claim_due("a", now, 10, now + timedelta(seconds=30))
    retry_at = now + timedelta(seconds=60)
    outcome = replace(mine, attempts=1, last_status_code=500, last_error="HTTP 500", next_attempt_at=retry_at)
    assert not await outbox.record_attempt("b", outcome)
    assert await outbox.record_attempt("a", outcome)
    stored = await outbox.get(mine.id)
    assert (stored.status, stored.attempts, stored.last_status_code, stored.next_attempt_at) == (
        PENDING,
        1,
        500,
        retry_at,
    )
    assert not await outbox.record_attempt("a", outcome)  # the lease went with the outcome
    assert await outbox.claim_due("a", now, 10, now + timedelta(seconds=30)) == []  # not due yet
    (again,) = await outbox.claim_due("b", retry_at, 10, retry_at + timedelta(seconds=30))
    done = replace(again, status=DELIVERED, attempts=2, last_status_code=204, delivered_at=retry_at)
    assert await outbox.record_attempt("b", done)
    assert (await outbox.get(mine.id)).status == DELIVERED
    later = retry_at + timedelta(hours=1)
    assert await outbox.claim_due("c", later, 10, later) == []  # delivered is never claimed again


async def test_release_gives_back_only_the_owners_leases(outbox) -> None:
    now = utc_now()
    for job in ("x", "y"):
        await outbox.add(delivery(job))
    (x,) = await outbox.claim_due("a", now, 1, now + timedelta(seconds=30))
    (_y,) = await outbox.claim_due("b", now, 1, now + timedelta(seconds=30))
    await outbox.release("a")
    (again,) = await outbox.claim_due("c", now, 10, now + timedelta(seconds=30))
    assert again.id == x.id


async def test_concurrent_claimants_never_share_a_delivery(outbox, request) -> None:
    now = utc_now()
    for n in range(60):
        await outbox.add(delivery(f"job-{n:02d}", now - timedelta(seconds=60 - n)))
    if outbox.name == "mysql":
        others = [make_mysql_outbox(request.getfixturevalue("mysql_url")) for _ in range(3)]
    else:
        others = [make_outbox(sqlite_url(outbox.db.url.database)) for _ in range(3)]
    claimants = [outbox, *others]
    try:
        rounds = await asyncio.gather(
            *(
                c.claim_due(f"w{i}", now, 7, now + timedelta(seconds=30))
                for _ in range(3)
                for i, c in enumerate(claimants)
            )
        )
    finally:
        for other in others:
            await other.close()
    ids = [d.id for batch in rounds for d in batch]
    assert len(ids) == len(set(ids))
    assert len(ids) == 60


async def test_a_delivery_stored_leased_is_not_claimed_until_the_lease_runs_out(outbox) -> None:
    now = utc_now()
    stored = delivery()
    assert await outbox.add(stored, "me", now + timedelta(seconds=30))
    assert await outbox.claim_due("other", now, 10, now + timedelta(seconds=30)) == []
    done = replace(stored, status=DELIVERED, attempts=1, last_status_code=204, delivered_at=now)
    assert not await outbox.record_attempt("other", done)
    later = now + timedelta(seconds=31)
    (again,) = await outbox.claim_due("other", later, 10, later + timedelta(seconds=30))
    assert again.id == stored.id

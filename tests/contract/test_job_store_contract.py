"""The job store contract, run on SQLite and on MySQL: what the worker and the use cases rely on.

On MySQL, two store instances stand for two replicas (each its own pool), so claims really race.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pixyproxy.domain.errors import IdempotencyConflict
from pixyproxy.domain.jobs_models import Job, JobError, JobRequest, JobStatus
from pixyproxy.domain.models import ImageDetail
from tests.support.sql import make_job_store, sqlite_url


def details(images) -> list[ImageDetail]:
    """A job's images as the ImageDetails that were stored (without the job's `deleted` mark)."""
    return [ImageDetail.model_validate(image.model_dump(exclude={"deleted"})) for image in images]


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def new_job(owner: str | None = None, at: datetime = NOW, **request) -> Job:
    return Job(
        id=uuid4(),
        status=JobStatus.queued,
        created_at=at,
        request=JobRequest(prompt=request.pop("prompt", "a fox"), **request),
        owner=owner,
    )


def detail() -> ImageDetail:
    guid = uuid4()
    return ImageDetail(
        guid=guid, prompt="a fox", filename=f"{guid}.png", created_at=NOW, size_bytes=10, width=4, height=4,
        model="m", sha256="0" * 64,
    )  # fmt: skip


def mysql_store(url: str):
    return make_job_store(url)


@pytest.fixture(params=["sqlite", "mysql"])
async def stores(request, tmp_path) -> AsyncIterator[tuple]:
    """Two stores on one database, as two processes would have."""
    if request.param == "sqlite":
        made = [make_job_store(sqlite_url(tmp_path / "db.sqlite")) for _ in range(2)]
    else:
        url = request.getfixturevalue("mysql_url")
        from tests.support.mysql import make_repository

        images = make_repository(url)
        await images.init()  # creates the database, as the container starts it before the job store
        await images.close()
        made = [mysql_store(url), mysql_store(url)]
    for store in made:
        await store.init()
    yield tuple(made)
    for store in made:
        await store.close()


@pytest.fixture
def store(stores):
    return stores[0]


async def test_a_job_reads_back_as_written_and_init_runs_again(store):
    job = new_job("alice", n=3, webhook_url="https://example.com/hook", partial_images=2)
    await store.add(job)
    assert await store.get(job.id) == job
    assert (await store.get(job.id)).owner == "alice"
    await store.init()  # idempotent
    assert await store.get(uuid4()) is None


async def test_idempotency_keys_are_per_owner(store):
    first = new_job("alice")
    await store.add(first, "key", "hash-1")
    with pytest.raises(IdempotencyConflict):
        await store.add(new_job("alice"), "key", "hash-2")
    await store.add(new_job("bob"), "key", "hash-3")
    await store.add(new_job(None), "key", "hash-4")
    stored = await store.get_by_idempotency_key("alice", "key")
    assert (stored.job.id, stored.request_hash) == (first.id, "hash-1")
    await store.release_idempotency_key("alice", "key", NOW)  # not older than NOW: kept
    assert await store.get_by_idempotency_key("alice", "key") is not None
    await store.release_idempotency_key("alice", "key", NOW + timedelta(seconds=1))
    assert await store.get_by_idempotency_key("alice", "key") is None
    assert await store.get(first.id) is not None


async def test_list_pages_newest_first_by_owner_and_status(store):
    jobs = [new_job("alice" if i % 2 else "bob", NOW + timedelta(seconds=i)) for i in range(6)]
    for job in jobs:
        await store.add(job)
    await store.cancel(jobs[5].id, NOW)
    page = await store.list_page("alice", None, 2)
    assert [j.id for j in page.items] == [jobs[5].id, jobs[3].id] and page.next
    page = await store.list_page("alice", None, 2, page.next)
    assert [j.id for j in page.items] == [jobs[1].id] and page.next is None
    assert [j.id for j in (await store.list_page(None, JobStatus.canceled, 10)).items] == [jobs[5].id]
    assert len((await store.list_page("bob", JobStatus.queued, 10)).items) == 3
    assert len((await store.list_page(None, None, 10)).items) == 6


async def test_concurrent_claims_from_two_processes_never_share_a_job(stores):
    made = set()
    for _ in range(40):
        job = new_job()
        await store_add(stores[0], job)
        made.add(job.id)
    batches = await asyncio.gather(*(stores[i % 2].claim(f"w{i}", NOW, NOW + LEASE, 6, 2) for i in range(10)))
    claimed = [job.id for batch in batches for job in batch]
    assert len(claimed) == len(set(claimed))
    rest = await stores[0].claim("late", NOW, NOW + LEASE, 100, 2)
    assert set(claimed) | {j.id for j in rest} == made and len(claimed) + len(rest) == 40
    assert all(j.status == JobStatus.running and j.attempts == 1 for batch in batches for j in batch)


async def store_add(store, job: Job) -> None:
    await store.add(job)


async def test_submits_while_claims_run_all_succeed(stores):
    """An INSERT racing the claim's locking reads must not fail (InnoDB gap locks once deadlocked it)."""

    async def submit_many() -> int:
        for _ in range(30):
            await stores[0].add(new_job())
        return 30

    async def claim_many() -> int:
        taken = 0
        for i in range(30):
            taken += len(await stores[1].claim(f"w{i}", NOW, NOW + LEASE, 2, 2))
        return taken

    submitted, claimed = await asyncio.gather(submit_many(), claim_many())
    rest = await stores[0].claim("rest", NOW, NOW + LEASE, 100, 2)
    assert claimed + len(rest) == submitted


async def test_an_expired_lease_is_claimed_again_then_abandoned(store):
    job = new_job()
    await store.add(job)
    [first] = await store.claim("a", NOW, NOW + LEASE, 5, 2)
    assert first.started_at == NOW
    assert await store.claim("b", NOW + LEASE - timedelta(seconds=1), NOW + 2 * LEASE, 5, 2) == []
    later = NOW + LEASE + timedelta(seconds=1)
    [again] = await store.claim("b", later, later + LEASE, 5, 2)
    assert (again.id, again.attempts, again.started_at) == (job.id, 2, NOW)
    assert await store.is_running(job.id, "b") and not await store.is_running(job.id, "a")
    assert await store.finish(job.id, "a", JobStatus.succeeded, later, []) is None  # not a's any more
    end = later + LEASE + timedelta(seconds=1)
    assert await store.claim("c", end, end + LEASE, 5, 2) == []
    error = JobError(code="job_abandoned", detail="given up")
    [failed] = await store.fail_abandoned(end, 2, error)
    assert (failed.status, failed.error, failed.finished_at) == (JobStatus.failed, error, end)
    assert await store.fail_abandoned(end, 2, error) == []


async def test_renew_finish_cancel_release_and_the_notified_mark(store):
    jobs = [new_job() for _ in range(3)]
    for job in jobs:
        await store.add(job)
    claimed = await store.claim("w", NOW, NOW + LEASE, 3, 2)
    assert len(claimed) == 3
    assert await store.renew("w", NOW + 2 * LEASE, [j.id for j in jobs]) == {j.id for j in jobs}
    # Renewed: not claimable when the first lease would have run out.
    assert await store.claim("x", NOW + LEASE + timedelta(seconds=1), NOW + 3 * LEASE, 5, 2) == []
    images = [detail(), detail()]
    done = await store.finish(jobs[0].id, "w", JobStatus.succeeded, NOW, images)
    assert done.status == JobStatus.succeeded and details(done.images) == images and done.finished_at == NOW
    canceled = await store.cancel(jobs[1].id, NOW)
    assert canceled.status == JobStatus.canceled
    assert await store.cancel(jobs[1].id, NOW) is None and await store.cancel(jobs[0].id, NOW) is None
    # The canceled one is no longer ours.
    assert await store.renew("w", NOW + 2 * LEASE, [j.id for j in jobs[1:]]) == {jobs[2].id}
    await store.release(jobs[2].id, "w")
    back = await store.get(jobs[2].id)
    assert (back.status, back.attempts) == (JobStatus.queued, 0)
    ended = {j.id for j in await store.unnotified(NOW + timedelta(seconds=1), 10)}
    assert ended == {jobs[0].id, jobs[1].id}
    await store.mark_notified(jobs[0].id)
    assert [j.id for j in await store.unnotified(NOW + timedelta(seconds=1), 10)] == [jobs[1].id]


async def test_progress_is_kept_while_running_read_by_another_replica_and_one_once_succeeded(stores):
    store, other = stores
    jobs = [new_job() for _ in range(3)]
    for job in jobs:
        await store.add(job)
    assert (await other.get(jobs[0].id)).progress is None  # nothing told yet
    await store.set_progress(jobs[0].id, "w", 0.5)  # queued: not running under w, nothing kept
    assert (await other.get(jobs[0].id)).progress is None
    assert len(await store.claim("w", NOW, NOW + LEASE, 3, 2)) == 3
    await store.set_progress(jobs[0].id, "w", 1 / 3)
    await store.set_progress(jobs[1].id, "w", 0.25)
    await store.set_progress(jobs[1].id, "x", 0.75)  # another worker's word counts for nothing
    assert (await other.get(jobs[0].id)).progress == pytest.approx(1 / 3, abs=1e-12)
    assert [j.progress for j in (await other.list_page(None, JobStatus.running, 10)).items] == [
        None, 0.25, pytest.approx(1 / 3, abs=1e-12)
    ]  # fmt: skip
    done = await store.finish(jobs[0].id, "w", JobStatus.succeeded, NOW, [detail()])
    failed = await store.finish(jobs[1].id, "w", JobStatus.failed, NOW, [], JobError(code="c", detail="d"))
    assert (done.progress, failed.progress) == (1.0, 0.25)  # a failure shows how far it got
    await store.set_progress(jobs[0].id, "w", 0.5)  # ended: a late write changes nothing
    assert (await other.get(jobs[0].id)).progress == 1.0

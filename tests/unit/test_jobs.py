"""Generation jobs on the real SQLite job store, with in-memory images and a scripted generator: every
transition (queued, running, succeeded, failed, canceled), leases and their take-over, idempotency,
owners, paging, events, the JobFinished hook and the worker loop."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from pixyproxy.adapters.sql.jobs import SQLJobStore
from pixyproxy.domain.errors import (
    GeneratorTimeout,
    IdempotencyConflict,
    InvalidImageRequest,
    JobAlreadyFinished,
    JobNotFound,
)
from pixyproxy.domain.jobs_models import Job, JobStatus
from pixyproxy.domain.jobs_worker import JobWorker
from pixyproxy.domain.models import Caller, ImageDetail
from pixyproxy.domain.tenancy import scoped_idempotency_key
from pixyproxy.domain.usecases.jobs.board import image_key
from tests.support.fakes import ManualClock, ScriptedGenerator
from tests.support.sql import make_job_store, sqlite_url
from tests.support.tasks import started
from tests.support.use_cases import JobUseCases, build_job_use_cases, build_use_cases


def details(images) -> list[ImageDetail]:
    """A job's images as the ImageDetails that were stored (without the job's `deleted` mark)."""
    return [ImageDetail.model_validate(image.model_dump(exclude={"deleted"})) for image in images]


ALICE = Caller("alice")
BOB = Caller("bob")
ADMIN = Caller("root", "admin")


class RecordingHook:
    """A JobFinished hook that records each job it is told of; `fail` makes the next call raise."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.fail = False

    async def job_finished(self, job: Job) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("outbox down")
        self.jobs.append(job)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SQLJobStore]:
    store = make_job_store(sqlite_url(tmp_path / "db.sqlite"))
    await store.init()
    yield store
    await store.close()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def hook():
    return RecordingHook()


@pytest.fixture
def images(generator, repository, blobs, clock):
    return build_use_cases(generator, repository, blobs, clock=clock)


@pytest.fixture
def jobs(store, images, hook, clock):
    return build_job_use_cases(store, images, job_finished=hook, clock=clock)


async def claim_one(jobs: JobUseCases, clock, worker: str = "w1") -> Job:
    claimed = await jobs.store.claim(worker, clock(), clock() + _lease(), 1, jobs.max_attempts)
    assert len(claimed) == 1
    return claimed[0]


def _lease() -> timedelta:
    return timedelta(seconds=30)


# -- submit -------------------------------------------------------------------------------------


async def test_submit_writes_the_queued_job_before_answering(jobs, store):
    job = await jobs.submit({"prompt": "a red fox", "n": 3}, ALICE)
    assert (job.status, job.attempts, job.images, job.error) == (JobStatus.queued, 0, [], None)
    stored = await store.get(job.id)
    assert stored == job and stored.owner == "alice" and stored.request.n == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "x", "n": 0},
        {"prompt": "x", "n": 11},
        {"prompt": "x", "n": "many"},
        {"prompt": "x", "partial_images": 4},
        {"prompt": "x", "model": "unknown-model"},
        {"prompt": "x", "webhook_url": "x" * 3000},
    ],
)
async def test_an_invalid_job_is_refused_and_nothing_is_stored(jobs, store, body):
    with pytest.raises(InvalidImageRequest):
        await jobs.submit(body)
    assert (await store.list_page(None, None, 10)).items == []


async def test_the_webhook_url_is_checked_at_submit(store, images):
    seen = []

    def check(url: str) -> None:
        seen.append(url)
        raise InvalidImageRequest("webhook_url: private addresses are refused")

    jobs = build_job_use_cases(store, images, check_webhook=check)
    with pytest.raises(InvalidImageRequest):
        await jobs.submit({"prompt": "x", "webhook_url": "http://10.0.0.1/hook"})
    assert seen == ["http://10.0.0.1/hook"]
    assert (await store.list_page(None, None, 10)).items == []


async def test_idempotency_key_replays_the_job_and_refuses_another_body(jobs):
    first = await jobs.submit({"prompt": "fox"}, ALICE, "key-1")
    assert await jobs.submit({"prompt": "fox"}, ALICE, "key-1") == first
    with pytest.raises(IdempotencyConflict):
        await jobs.submit({"prompt": "wolf"}, ALICE, "key-1")
    other = await jobs.submit({"prompt": "fox"}, BOB, "key-1")  # keys are per owner
    assert other.id != first.id


async def test_an_expired_idempotency_key_counts_as_unused(jobs, clock):
    first = await jobs.submit({"prompt": "fox"}, None, "key-1")
    clock.advance(hours=25)
    again = await jobs.submit({"prompt": "fox"}, None, "key-1")
    assert again.id != first.id


# -- read and list --------------------------------------------------------------------------------


async def test_another_users_job_is_not_found_and_admin_sees_all(jobs):
    job = await jobs.submit({"prompt": "fox"}, ALICE)
    assert (await jobs.read.get(job.id, ALICE)).id == job.id
    assert (await jobs.read.get(str(job.id), ADMIN)).id == job.id
    assert (await jobs.read.get(job.id, None)).id == job.id  # keys off: everything open
    with pytest.raises(JobNotFound):
        await jobs.read.get(job.id, BOB)
    with pytest.raises(JobNotFound):
        await jobs.cancel(job.id, BOB)
    assert (await jobs.read.page(BOB))[0] == []
    assert [j.id for j in (await jobs.read.page(ADMIN))[0]] == [job.id]


@pytest.mark.parametrize("job_id", ["nope", "1" * 65, "00000000-0000-0000-0000-000000000000"])
async def test_an_unknown_or_malformed_id_is_not_found(jobs, job_id):
    with pytest.raises(JobNotFound):
        await jobs.read.get(job_id)


async def test_list_is_newest_first_paged_and_filtered_by_status(jobs, clock):
    made = []
    for index in range(5):
        made.append(await jobs.submit({"prompt": f"p{index}"}, ALICE))
        clock.advance(seconds=1)
    await jobs.cancel(made[1].id, ALICE)
    page, cursor = await jobs.read.page(ALICE, limit=2)
    assert [j.id for j in page] == [made[4].id, made[3].id] and cursor
    page, cursor = await jobs.read.page(ALICE, limit=2, cursor=cursor)
    assert [j.id for j in page] == [made[2].id, made[1].id] and cursor
    page, cursor = await jobs.read.page(ALICE, limit=2, cursor=cursor)
    assert [j.id for j in page] == [made[0].id] and cursor is None
    canceled, _ = await jobs.read.page(ALICE, JobStatus.canceled)
    assert [j.id for j in canceled] == [made[1].id]
    queued, _ = await jobs.read.page(ALICE, JobStatus.queued)
    assert len(queued) == 4


# -- run ------------------------------------------------------------------------------------------


async def test_a_claimed_job_runs_and_succeeds_with_n_images(jobs, store, repository, hook, clock):
    job = await jobs.submit({"prompt": "fox", "n": 3}, ALICE)
    running = await claim_one(jobs, clock)
    assert (running.status, running.attempts, running.started_at) == (JobStatus.running, 1, clock())
    await jobs.run(running, "w1")
    done = await store.get(job.id)
    assert done.status == JobStatus.succeeded and done.finished_at == clock() and done.error is None
    assert len(done.images) == 3 and len({d.guid for d in done.images}) == 3
    for index in range(3):
        key = scoped_idempotency_key(ALICE, image_key(job.id, index))
        stored = await repository.get_by_idempotency_key(key)
        assert [stored.detail] == details([done.images[index]]) and stored.detail.owner == "alice"
    assert [j.id for j in hook.jobs] == [job.id]
    assert await store.unnotified(clock(), 10) == []


async def test_a_generator_failure_ends_the_job_failed_with_its_code(jobs, store, generator, hook, clock):
    generator.fail_with = GeneratorTimeout("the generator did not answer in time")
    job = await jobs.submit({"prompt": "fox"})
    await jobs.run(await claim_one(jobs, clock), "w1")
    failed = await store.get(job.id)
    assert failed.status == JobStatus.failed
    assert (failed.error.code, failed.error.detail) == (
        "generator_timeout",
        "the generator did not answer in time",
    )
    assert [j.status for j in hook.jobs] == [JobStatus.failed]


async def test_a_failure_part_way_keeps_the_images_already_made(jobs, store, images, generator, clock):
    job = await jobs.submit({"prompt": "fox", "n": 3})
    running = await claim_one(jobs, clock)
    first = await images.generate(job.request.image_request(), None, image_key(job.id, 0))
    generator.fail_with = GeneratorTimeout()
    await jobs.run(running, "w1")
    failed = await store.get(job.id)
    assert failed.status == JobStatus.failed and failed.error.code == "generator_timeout"
    assert details(failed.images) == [first]


async def test_cancel_a_queued_job_and_it_is_never_claimed(jobs, store, hook, clock):
    job = await jobs.submit({"prompt": "fox"})
    canceled = await jobs.cancel(job.id)
    assert canceled.status == JobStatus.canceled and canceled.finished_at == clock()
    assert await store.claim("w1", clock(), clock() + _lease(), 10, 2) == []
    with pytest.raises(JobAlreadyFinished):
        await jobs.cancel(job.id)
    assert [j.status for j in hook.jobs] == [JobStatus.canceled]


async def test_cancel_a_running_job_stops_the_provider_call_and_stores_nothing(
    jobs, store, generator, repository, blobs, hook, clock
):
    generator.hold = True
    job = await jobs.submit({"prompt": "fox", "n": 2})
    running = await claim_one(jobs, clock)
    task = await started(lambda: jobs.run(running, "w1"))
    await generator.called.wait()
    canceled = await jobs.cancel(job.id)
    await task  # the run ends quietly: whoever canceled it has ended it
    generator.release()
    assert canceled.status == JobStatus.canceled
    assert (await store.get(job.id)).status == JobStatus.canceled
    assert repository.rows == [] and blobs.blobs == {}
    assert [j.status for j in hook.jobs] == [JobStatus.canceled]
    with pytest.raises(JobAlreadyFinished):
        await jobs.cancel(job.id)


async def test_a_job_canceled_by_another_process_stores_nothing_after(
    jobs, store, generator, repository, blobs, clock
):
    generator.hold = True
    job = await jobs.submit({"prompt": "fox"})
    running = await claim_one(jobs, clock)
    task = await started(lambda: jobs.run(running, "w1"))
    await generator.called.wait()
    await store.cancel(job.id, clock())  # as another replica's DELETE does: only the row changes
    generator.release()
    await task
    assert (await store.get(job.id)).status == JobStatus.canceled
    assert repository.rows == [] and blobs.blobs == {}


async def test_finishing_a_job_no_longer_leased_changes_nothing(jobs, store, clock):
    job = await jobs.submit({"prompt": "fox"})
    await claim_one(jobs, clock, "w1")
    assert await store.finish(job.id, "w2", JobStatus.succeeded, clock(), []) is None
    assert (await store.get(job.id)).status == JobStatus.running


# -- leases ---------------------------------------------------------------------------------------


async def test_an_expired_lease_is_taken_over_then_given_up_after_max_attempts(jobs, store, hook, clock):
    job = await jobs.submit({"prompt": "fox"})
    await claim_one(jobs, clock, "dead-1")
    assert await store.claim("w2", clock(), clock() + _lease(), 10, 2) == []  # still leased
    clock.advance(seconds=31)
    taken = await claim_one(jobs, clock, "w2")
    assert (taken.id, taken.attempts) == (job.id, 2)
    assert not await store.is_running(job.id, "dead-1") and await store.is_running(job.id, "w2")
    clock.advance(seconds=31)
    assert await store.claim("w3", clock(), clock() + _lease(), 10, 2) == []
    worker = JobWorker(jobs.run, clock=clock, worker_id="w3")
    await worker.housekeeping()
    failed = await store.get(job.id)
    assert failed.status == JobStatus.failed and failed.error.code == "job_abandoned"
    assert "2 times" in failed.error.detail
    assert [j.id for j in hook.jobs] == [job.id]


async def test_renewal_keeps_a_running_job_from_being_taken_over(jobs, store, clock):
    job = await jobs.submit({"prompt": "fox"})
    await claim_one(jobs, clock, "w1")
    clock.advance(seconds=20)
    assert await store.renew("w1", clock() + _lease(), [job.id]) == {job.id}
    clock.advance(seconds=20)
    assert await store.claim("w2", clock(), clock() + _lease(), 10, 2) == []


async def test_a_job_whose_task_ended_unrecorded_is_not_renewed_and_is_taken_over(jobs, store, clock):
    """The store was down when the job ended: its row still says running, but no task runs it."""
    job = await jobs.submit({"prompt": "fox"})
    await claim_one(jobs, clock, "w1")
    worker = JobWorker(jobs.run, clock=clock, worker_id="w1")
    worker._tasks[uuid4()] = asyncio.create_task(asyncio.sleep(0))  # another job of w1's is running
    await worker.housekeeping()
    clock.advance(seconds=31)
    taken = await claim_one(jobs, clock, "w2")
    assert (taken.id, taken.attempts) == (job.id, 2)
    await asyncio.gather(*worker._tasks.values(), return_exceptions=True)


async def test_a_taken_over_job_reuses_the_images_already_stored(jobs, store, images, generator, clock):
    job = await jobs.submit({"prompt": "fox", "n": 3})
    # The first worker stored image 0, then its process died.
    await claim_one(jobs, clock, "dead-1")
    first = await images.generate(job.request.image_request(), None, image_key(job.id, 0))
    clock.advance(seconds=31)
    taken = await claim_one(jobs, clock, "w2")
    await jobs.run(taken, "w2")
    done = await store.get(job.id)
    assert done.status == JobStatus.succeeded and len(done.images) == 3
    assert details(done.images[:1]) == [first]
    assert len(generator.calls) == 3  # one before the crash, two after: never more than n images


async def test_claims_never_hand_one_job_to_two_workers(jobs, store, clock):
    made = {(await jobs.submit({"prompt": f"p{i}"})).id for i in range(30)}
    results = await asyncio.gather(
        *(store.claim(f"w{i}", clock(), clock() + _lease(), 7, 2) for i in range(6))
    )
    claimed = [job.id for batch in results for job in batch]
    assert len(claimed) == len(set(claimed)) == 30 and set(claimed) == made


# -- the hook and events --------------------------------------------------------------------------


async def test_an_end_the_hook_missed_is_handed_on_by_the_sweep(jobs, store, hook, clock):
    hook.fail = True
    job = await jobs.submit({"prompt": "fox"})
    await jobs.run(await claim_one(jobs, clock), "w1")
    assert hook.jobs == [] and [j.id for j in await store.unnotified(clock() + _lease(), 10)] == [job.id]
    clock.advance(seconds=11)
    await JobWorker(jobs.run, clock=clock).housekeeping()
    assert [j.id for j in hook.jobs] == [job.id]
    assert await store.unnotified(clock() + _lease(), 10) == []


async def test_events_show_queued_running_partials_succeeded_and_done(store, repository, blobs, clock):
    images = build_use_cases(OfflineImageGenerator(), repository, blobs, clock=clock)
    jobs = build_job_use_cases(store, images, clock=clock)
    job = await jobs.submit({"prompt": "fox", "partial_images": 2})
    stream = jobs.events(job.id)
    first = await anext(stream)
    assert (first.name, first.data.status) == ("status", JobStatus.queued)
    running = await claim_one(jobs, clock)
    run = asyncio.create_task(jobs.run(running, "w1"))
    names, progress = [], []
    async for event in stream:
        if event.name == "progress":  # how many depends on the throttle's clock: only their order counts
            progress.append(event.data["progress"])
            continue
        names.append((event.name, getattr(event.data, "status", None)))
        if event.name == "partial_image":
            assert set(event.data) == {"image", "index", "b64_json"} and event.data["image"] == 0
    await run
    assert 0 < progress[0] < 1 and progress[-1] == 1.0 and progress == sorted(set(progress))
    assert names == [
        ("status", JobStatus.running),
        ("partial_image", None),
        ("partial_image", None),
        ("status", JobStatus.succeeded),
        ("done", JobStatus.succeeded),
    ]


async def test_events_of_an_ended_job_are_its_state_and_done(jobs):
    job = await jobs.submit({"prompt": "fox"})
    await jobs.cancel(job.id)
    events = [(e.name, e.data.status) async for e in jobs.events(job.id)]
    assert events == [("status", JobStatus.canceled), ("done", JobStatus.canceled)]


async def test_events_see_a_change_made_by_another_process(store, images, clock):
    jobs = build_job_use_cases(store, images, clock=clock, events_poll_seconds=0.01)
    job = await jobs.submit({"prompt": "fox"})
    stream = jobs.events(job.id)
    assert (await anext(stream)).data.status == JobStatus.queued
    await store.cancel(job.id, clock())  # not through this service: only polling can see it
    assert (await anext(stream)).data.status == JobStatus.canceled
    assert (await anext(stream)).name == "done"


# -- the worker loop ------------------------------------------------------------------------------


async def wait_until_done(jobs: JobUseCases, job: Job) -> Job:
    async for event in jobs.events(job.id):
        if event.name == "done":
            return event.data
    raise AssertionError("no done event")


async def test_the_worker_runs_at_most_concurrency_jobs_and_then_the_rest(store, repository, blobs):
    generator = ScriptedGenerator(hold=True)
    jobs = build_job_use_cases(store, build_use_cases(generator, repository, blobs))
    worker = JobWorker(jobs.run, concurrency=2, poll_seconds=30)  # a long poll: only wake-ups drive it
    await worker.init()
    try:
        made = [await jobs.submit({"prompt": f"p{i}"}) for i in range(5)]
        await generator.called.wait()
        while worker.running < 2:
            await asyncio.sleep(0)  # let the claim loop take the second one
        for _ in range(20):
            await asyncio.sleep(0)
        assert worker.running == 2 and len(generator.calls) == 2
        generator.release()
        ended = [await wait_until_done(jobs, job) for job in made]
        assert [j.status for j in ended] == [JobStatus.succeeded] * 5
        assert len(generator.calls) == 5 and len(repository.rows) == 5
    finally:
        await worker.close()


async def test_closing_the_worker_puts_its_running_job_back_in_the_queue(store, repository, blobs):
    generator = ScriptedGenerator(hold=True)
    jobs = build_job_use_cases(store, build_use_cases(generator, repository, blobs))
    worker = JobWorker(jobs.run, concurrency=4, poll_seconds=30)
    await worker.init()
    job = await jobs.submit({"prompt": "fox"})
    await generator.called.wait()
    await worker.close()
    back = await store.get(job.id)
    assert (back.status, back.attempts) == (JobStatus.queued, 0)
    assert repository.rows == [] and blobs.blobs == {}


async def test_renewal_stops_a_job_canceled_elsewhere(store, repository, blobs, clock):
    generator = ScriptedGenerator(hold=True)
    jobs = build_job_use_cases(store, build_use_cases(generator, repository, blobs), clock=clock)
    worker = JobWorker(jobs.run, clock=clock, worker_id="w1")
    job = await jobs.submit({"prompt": "fox"})
    worker._start(await claim_one(jobs, clock, "w1"))
    await generator.called.wait()
    await store.cancel(job.id, clock())
    await worker.housekeeping()  # the renewal finds the job no longer running under w1
    while worker.running:
        await asyncio.sleep(0)
    generator.release()
    assert (await store.get(job.id)).status == JobStatus.canceled
    assert repository.rows == [] and blobs.blobs == {}

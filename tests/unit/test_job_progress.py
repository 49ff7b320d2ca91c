"""A job's progress: report_progress heard only inside a job (each image its own hearer, a worker thread
included), the images' fractions combined over the job and never going back, shown at most once per
interval, written one at a time skipping to the newest, kept in the job's row and told to its watchers."""

import asyncio
import math
from datetime import timedelta
from typing import Any

import pytest

from pixyproxy.domain.jobs_models import JobStatus
from pixyproxy.domain.progress import report_progress, report_steps, reporting_to
from pixyproxy.domain.usecases.jobs.progress import JobProgress, LatestWriter
from tests.support.fakes import ManualClock, ScriptedGenerator
from tests.support.sql import make_job_store, sqlite_url
from tests.support.use_cases import build_job_use_cases, build_use_cases

LEASE = timedelta(seconds=30)


class Timers:
    """call_later for a test: the callbacks wait until the test fires them."""

    def __init__(self) -> None:
        self.waiting: list[Any] = []

    def call_later(self, delay: float, callback) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(3600, callback)  # never on its own in a test
        self.waiting.append((handle, callback))
        return handle

    def fire(self) -> None:
        waiting, self.waiting = self.waiting, []
        for handle, callback in waiting:
            if not handle.cancelled():
                handle.cancel()
                callback()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outside_a_job_report_progress_does_nothing():
    report_progress(0.5)  # no hearer: no error, nothing kept
    report_steps(3, 10)


def test_inside_values_are_clamped_nan_is_ignored_and_the_hearer_ends_with_the_block():
    heard: list[float] = []
    with reporting_to(heard.append):
        report_progress(-1)
        report_progress(0.25)
        report_progress(7)
        report_progress(math.nan)
        report_steps(3, 4)
        for done, total in ((1, 0), ("1", 2), (None, 3), (2, None)):
            report_steps(done, total)
    report_progress(0.9)
    assert heard == [0.0, 0.25, 1.0, 0.75]


async def test_each_task_hears_its_own_and_a_worker_thread_reports_to_its_task():
    heard: dict[str, list[float]] = {"a": [], "b": []}
    both_set = asyncio.Barrier(2)

    async def image(name: str, fraction: float) -> None:
        with reporting_to(heard[name].append):
            await both_set.wait()  # each task has set its hearer before either reports
            report_progress(fraction)
            await asyncio.to_thread(report_progress, fraction / 2)

    await asyncio.gather(image("a", 0.5), image("b", 0.8))
    assert heard == {"a": [0.5, 0.25], "b": [0.8, 0.4]}


async def test_images_combine_over_the_job_and_the_job_never_goes_back():
    shown: list[float] = []
    clock, timers = Clock(), Timers()
    progress = JobProgress(2, shown.append, 1.0, clock=clock, call_later=timers.call_later)
    assert progress.value is None
    progress.reporter(0)(0.5)
    assert shown == [0.25]  # the first value at once
    progress.reporter(1)(0.5)
    progress.reporter(0)(0.1)  # a second pass of image 0: the job stays where it was
    assert (progress.value, shown) == (0.5, [0.25])
    timers.fire()  # the interval is up: the newest
    assert shown == [0.25, 0.5]
    clock.now += 1.0
    progress.done(0)
    assert shown == [0.25, 0.5, 0.75]  # image 0 stored, image 1 half made
    progress.reporter(1)(1 / 3)
    assert progress.value == 0.75
    progress.done(1)
    progress.close()  # the job's end says 1 itself
    timers.fire()
    assert shown == [0.25, 0.5, 0.75] and progress.value == 1.0


async def test_a_thousand_reports_within_an_interval_are_shown_twice():
    shown: list[float] = []
    timers = Timers()
    progress = JobProgress(1, shown.append, 0.25, clock=Clock(), call_later=timers.call_later)
    reporter = progress.reporter(0)
    for step in range(1, 1001):
        reporter(step / 1001)
    assert shown == [0.001] and len(timers.waiting) == 1
    timers.fire()
    assert shown == [0.001, 0.999]


async def test_one_is_left_to_the_jobs_end():
    """Every image stored: the end of the job writes 1 (with its status) and tells it, so no write here."""
    shown: list[float] = []
    timers = Timers()
    progress = JobProgress(2, shown.append, 0.25, clock=Clock(), call_later=timers.call_later)
    progress.done(0)
    progress.done(1)
    timers.fire()
    assert shown == [0.5] and progress.value == 1.0


async def test_a_report_from_a_worker_thread_is_combined_on_the_loop():
    shown: list[float] = []
    arrived = asyncio.Event()

    def show(value: float) -> None:
        shown.append(value)
        arrived.set()

    progress = JobProgress(1, show, 0.25)
    with reporting_to(progress.reporter(0)):
        await asyncio.to_thread(report_progress, 0.4)
    await arrived.wait()
    assert shown == [0.4]
    progress.close()


async def test_writes_go_one_at_a_time_skipping_to_the_newest():
    written: list[float] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def write(value: float) -> None:
        first_started.set()
        await release.wait()
        written.append(value)

    writer = LatestWriter(write)
    writer.put(0.1)
    await first_started.wait()
    for value in (0.2, 0.3, 0.4):
        writer.put(value)
    release.set()
    await writer.close()  # waits for the write under way; what follows it ran before close
    assert written[0] == 0.1 and written[-1] in (0.1, 0.4) and 0.2 not in written and 0.3 not in written


async def test_a_failed_write_leaves_the_next_one_to_go():
    written: list[float] = []
    done = asyncio.Event()

    async def write(value: float) -> None:
        if value == 0.1:
            raise OSError("store down")
        written.append(value)
        done.set()

    writer = LatestWriter(write)
    writer.put(0.1)
    writer.put(0.2)
    await done.wait()
    await writer.close()
    assert written == [0.2]


class ReportingGenerator(ScriptedGenerator):
    """Reports half way, then (with hold) waits for release() before answering."""

    async def generate(self, request, **options):
        report_progress(0.5)
        return await super().generate(request, **options)


@pytest.fixture
async def store(tmp_path):
    store = make_job_store(sqlite_url(tmp_path / "db.sqlite"))
    await store.init()
    yield store
    await store.close()


async def test_a_jobs_progress_is_kept_in_its_row_told_to_watchers_and_one_once_succeeded(
    store, repository, blobs
):
    generator = ReportingGenerator(hold=True)
    clock = ManualClock()
    jobs = build_job_use_cases(store, build_use_cases(generator, repository, blobs, clock=clock), clock=clock)
    jobs.run.progress_interval = 0  # every change shown: this test counts them
    job = await jobs.submit({"prompt": "fox", "n": 2})
    assert (await store.get(job.id)).progress is None
    stream = jobs.events(job.id)
    assert (await anext(stream)).data.progress is None
    (claimed,) = await store.claim("w1", clock(), clock() + LEASE, 1, jobs.max_attempts)
    run = asyncio.create_task(jobs.run(claimed, "w1"))
    seen = []
    async for event in stream:
        if event.name == "progress":
            seen.append(event.data["progress"])
            if event.data["progress"] == 0.5:  # both images half made; told once the row says so
                assert (await store.get(job.id)).progress == 0.5
                generator.release()
        elif event.name == "done":
            final = event.data
    await run
    # 0.25 may have been passed over by 0.5 before its write began: writes skip to the newest.
    assert 0.5 in seen and seen[-1] == 1.0 and seen == sorted(set(seen))
    assert final.status == JobStatus.succeeded and final.progress == 1.0
    assert (await store.get(job.id)).progress == 1.0


async def test_a_job_whose_provider_tells_nothing_has_no_progress_until_an_image_is_stored(
    store, repository, blobs
):
    generator = ScriptedGenerator(hold=True)
    clock = ManualClock()
    jobs = build_job_use_cases(store, build_use_cases(generator, repository, blobs, clock=clock), clock=clock)
    jobs.run.progress_interval = 3600  # after the first value, nothing more is shown while it runs
    job = await jobs.submit({"prompt": "fox", "n": 2})
    (claimed,) = await store.claim("w1", clock(), clock() + LEASE, 1, jobs.max_attempts)
    run = asyncio.create_task(jobs.run(claimed, "w1"))
    await generator.called.wait()
    assert (await store.get(job.id)).progress is None
    generator.release()
    await run
    assert (await store.get(job.id)).progress == 1.0  # the end says so, whatever the throttle held


async def test_events_see_progress_kept_by_another_process(store, repository, blobs):
    clock = ManualClock()
    images = build_use_cases(ScriptedGenerator(), repository, blobs, clock=clock)
    jobs = build_job_use_cases(store, images, clock=clock, events_poll_seconds=0.01)
    job = await jobs.submit({"prompt": "fox"})
    stream = jobs.events(job.id)
    assert (await anext(stream)).data.progress is None
    await store.claim("elsewhere", clock(), clock() + LEASE, 1, jobs.max_attempts)
    assert (await anext(stream)).data.status == JobStatus.running  # polled: nothing told this process
    await store.set_progress(job.id, "elsewhere", 0.4)
    event = await anext(stream)
    assert (event.name, event.data) == ("progress", {"progress": 0.4})
    await store.finish(job.id, "elsewhere", JobStatus.succeeded, clock(), [])
    assert [(e.name, e.data if e.name == "progress" else e.data.progress) async for e in stream] == [
        ("progress", {"progress": 1.0}),
        ("status", 1.0),
        ("done", 1.0),
    ]

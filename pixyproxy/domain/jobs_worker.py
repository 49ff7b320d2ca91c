"""The job worker: one loop per process that claims queued jobs from the store under a lease and runs up
to `concurrency` of them at once.

* Waiting jobs wait in the store. The loop claims as many as it has free slots, then sleeps until a job
  is submitted in this process, one of its jobs ends, or `poll_seconds` pass (jobs submitted elsewhere).
* Every lease_seconds / 3 a housekeeping pass renews the leases of this process's jobs, cancels the local
  task of any job no longer running under its lease (canceled or taken over elsewhere), ends as failed
  the jobs abandoned with every attempt used, and hands on ends whose JobFinished hook never returned.
* A job whose process died keeps its row as running until its lease runs out; then any worker claims it
  again (attempts + 1), or fails it once `max_attempts` attempts were made.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from pixyproxy.domain.claim_loop import ClaimLoop
from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.jobs_models import Job, JobError
from pixyproxy.domain.usecases.jobs.run import RunJob

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 64
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_POLL_SECONDS = 0.5
NOTIFY_GRACE_SECONDS = 10.0  # an end older than this whose hook was not marked done is handed on again


def abandoned_error(attempts: int) -> JobError:
    return JobError(
        code="job_abandoned",
        detail=f"The job was interrupted {attempts} times (the process running it stopped) and was "
        "given up; submit it again.",
    )


class JobWorker:
    def __init__(
        self,
        run: RunJob,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        enabled: bool = True,
        clock: Callable[[], datetime] = utc_now,
        worker_id: str | None = None,
    ) -> None:
        self.run = run
        self.store = run.store
        self.board = run.board
        self.max_attempts = run.max_attempts
        self.concurrency = concurrency
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.enabled = enabled
        self._clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid4().hex[:8]}"
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._claims = ClaimLoop(self._claim_and_start, lambda: self.poll_seconds, "jobs")
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False

    # -- start and stop (the container's Resource calls these) ---------------------------------

    async def init(self) -> None:
        if not self.enabled or self._loops:
            return
        self._closing = False
        self.board.on_submit = self._claims.wake
        self._loops = [
            asyncio.create_task(self._claims.run(), name="jobs-claim"),
            asyncio.create_task(self._housekeeping_loop(), name="jobs-housekeeping"),
        ]
        log.info("job worker %s started (concurrency %d)", self.worker_id, self.concurrency)

    async def close(self) -> None:
        """Stop claiming; cancel running jobs, which put themselves back in the queue for another worker."""
        self._closing = True
        loops, self._loops = self._loops, []
        tasks = list(self._tasks.values())
        for task in [*loops, *tasks]:
            task.cancel()
        for task in [*loops, *tasks]:
            with contextlib.suppress(BaseException):
                await task
        self.board.on_submit = lambda: None

    @property
    def running(self) -> int:
        return len(self._tasks)

    # -- the loops ------------------------------------------------------------------------------

    async def _claim_and_start(self) -> bool:
        """Claim what fits in the free slots and start each; True when it filled them (more may wait)."""
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return False
        now = self._clock()
        claimed = await self.store.claim(self.worker_id, now, now + self.lease, free, self.max_attempts)
        for job in claimed:
            self._start(job)
        return bool(claimed) and len(claimed) == free

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self.run(job, self.worker_id), name=f"job-{job.id}")
        self._tasks[job.id] = task

        def done(finished: asyncio.Task[None], job_id: UUID = job.id) -> None:
            self._tasks.pop(job_id, None)
            self._claims.wake()  # a slot is free
            if not finished.cancelled() and finished.exception() is not None:
                log.error("job %s task failed", job_id, exc_info=finished.exception())

        task.add_done_callback(done)

    async def _housekeeping_loop(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self._closing:
            try:
                await self.housekeeping()
            except Exception as exc:
                log.warning("job housekeeping failed (%s); trying again", exc)
            await asyncio.sleep(interval)

    async def housekeeping(self) -> None:
        now = self._clock()
        if self._tasks:
            mine = await self.store.renew(self.worker_id, now + self.lease, list(self._tasks))
            for job_id, task in list(self._tasks.items()):
                if job_id not in mine and job_id in self._tasks:
                    # Canceled, or taken over after our lease ran out: stop, store nothing more.
                    self.board.canceling.add(job_id)
                    task.cancel()
        for job in await self.store.fail_abandoned(
            now, self.max_attempts, abandoned_error(self.max_attempts)
        ):
            log.warning("job %s given up after %d attempts", job.id, job.attempts)
            await self.run.hand_on(job)
        for job in await self.store.unnotified(now - timedelta(seconds=NOTIFY_GRACE_SECONDS), 100):
            await self.run.hand_on(job)

"""A job's end, handed on: watchers and the JobFinished hook (webhooks) are told, then the row is marked
told. A hook that fails is told again by the worker's sweep."""

import logging

from pixyproxy.domain.jobs_models import FINISHED, Job, JobEvent
from pixyproxy.domain.ports.jobs import JobFinished, JobStore
from pixyproxy.domain.usecases.jobs.board import JobBoard

log = logging.getLogger(__name__)


class NoJobFinished:
    """The JobFinished hook when nothing listens (webhook delivery replaces it)."""

    async def job_finished(self, job: Job) -> None:
        return None


class HandOnEnd:
    def __init__(self, store: JobStore, board: JobBoard, job_finished: JobFinished | None = None) -> None:
        self.store = store
        self.board = board
        self.job_finished = job_finished or NoJobFinished()

    async def __call__(self, job: Job) -> None:
        assert job.status in FINISHED
        self.board.publish(job.id, JobEvent("status", job))
        try:
            await self.job_finished.job_finished(job)
            await self.store.mark_notified(job.id)
        except Exception:  # the sweep tells it again
            log.warning("job %s ended, but its end could not be handed on yet; retrying later", job.id)

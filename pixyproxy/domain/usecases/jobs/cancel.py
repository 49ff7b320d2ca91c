"""Cancel a queued or running job: its row says canceled, and its provider call stops (here at once,
in another process at its next lease renewal); nothing more is stored."""

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import JobAlreadyFinished
from pixyproxy.domain.jobs_models import Job
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.jobs import JobStore
from pixyproxy.domain.usecases.jobs.board import JobBoard
from pixyproxy.domain.usecases.jobs.ending import HandOnEnd
from pixyproxy.domain.usecases.jobs.reading import ReadJobs


class CancelJob:
    def __init__(
        self,
        read: ReadJobs,
        store: JobStore,
        board: JobBoard,
        hand_on: HandOnEnd,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.read = read
        self.store = store
        self.board = board
        self.hand_on = hand_on
        self._clock = clock

    async def __call__(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        job = await self.read.get(job_id, caller)
        if job.finished:
            raise JobAlreadyFinished()
        canceled = await self.store.cancel(job.id, self._clock())
        if canceled is None:
            raise JobAlreadyFinished()
        self.board.stop(job.id)
        await self.hand_on(canceled)
        return canceled

"""A job's events: its state now, a `status` event on each change, a `progress` event each time its
progress moves, `partial_image` previews where this process runs the job, and `done` once it has ended.
Changes made by another process (its progress too) are seen by polling the store."""

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

from pixyproxy.domain.jobs_models import JobEvent
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.jobs import JobStore
from pixyproxy.domain.usecases.jobs.board import JobBoard
from pixyproxy.domain.usecases.jobs.reading import ReadJobs

DEFAULT_EVENTS_POLL_SECONDS = 0.5


class JobEvents:
    def __init__(
        self,
        read: ReadJobs,
        store: JobStore,
        board: JobBoard,
        poll_seconds: float = DEFAULT_EVENTS_POLL_SECONDS,
    ) -> None:
        self.read = read
        self.store = store
        self.board = board
        self.poll_seconds = poll_seconds

    async def __call__(self, job_id: str | UUID, caller: Caller | None = None) -> AsyncIterator[JobEvent]:
        job = await self.read.get(job_id, caller)
        queue = self.board.watch(job.id)
        try:
            job = await self.read.get(job.id, caller)  # read again once subscribed: no change falls between
            yield JobEvent("status", job)
            last = (job.status, job.attempts)
            shown = job.progress
            while not job.finished:
                try:
                    async with asyncio.timeout(self.poll_seconds):
                        event: JobEvent | None = await queue.get()
                except TimeoutError:
                    event = None
                if event is not None and event.name == "progress":
                    if event.data["progress"] != shown:
                        shown = event.data["progress"]
                        yield event
                    continue
                if event is not None and event.name != "status":
                    yield event
                    continue
                fresh = event.data if event is not None else await self.store.get(job.id)
                if fresh is None:
                    return
                job = fresh
                if job.progress is not None and job.progress != shown:
                    shown = job.progress
                    yield JobEvent("progress", {"progress": shown})
                if (job.status, job.attempts) != last:
                    last = (job.status, job.attempts)
                    yield JobEvent("status", job)
            yield JobEvent("done", job)
        finally:
            self.board.unwatch(job.id, queue)

"""What this process knows of its jobs beyond the store: who watches a job's events, which jobs run here
(and which of them are being cancelled), and how to wake the worker when one is submitted."""

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from uuid import UUID

from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.jobs_models import JobError, JobEvent, JobRequest

WATCHER_QUEUE = 64  # events held for one slow stream before partial previews are dropped


def job_fingerprint(request: JobRequest) -> str:
    return hashlib.sha256(("job:" + request.model_dump_json()).encode()).hexdigest()


def image_key(job_id: UUID, index: int) -> str:
    """The Idempotency-Key of a job's image: making image `index` of job `job_id` happens once."""
    return f"job:{job_id}:{index}"


def error_of(exc: BaseException) -> JobError:
    if isinstance(exc, ImageException):
        return JobError(code=exc.code, detail=exc.message)
    return JobError(code="internal_error", detail="An unexpected error ended the job.")


class JobBoard:
    def __init__(self) -> None:
        self._watchers: dict[UUID, set[asyncio.Queue[JobEvent]]] = {}
        # Jobs running in this process, and the ones among them being cancelled (not shut down).
        self.running: dict[UUID, asyncio.Task[None]] = {}
        self.canceling: set[UUID] = set()
        self.on_submit: Callable[[], None] = lambda: None  # the worker's wake-up

    def watch(self, job_id: UUID) -> asyncio.Queue[JobEvent]:
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(WATCHER_QUEUE)
        self._watchers.setdefault(job_id, set()).add(queue)
        return queue

    def unwatch(self, job_id: UUID, queue: asyncio.Queue[JobEvent]) -> None:
        watchers = self._watchers.get(job_id)
        if watchers is None:
            return
        watchers.discard(queue)
        if not watchers:
            self._watchers.pop(job_id, None)

    def publish(self, job_id: UUID, event: JobEvent) -> None:
        for queue in self._watchers.get(job_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                if event.name == "status":  # a status must get through; drop an old preview for it
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(event)

    def stop(self, job_id: UUID) -> None:
        """Cancel the job's task if it runs here (its provider call stops now; elsewhere, at renewal)."""
        task = self.running.get(job_id)
        if task is not None:
            self.canceling.add(job_id)
            task.cancel()

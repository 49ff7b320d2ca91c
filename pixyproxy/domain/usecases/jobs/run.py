"""Run one job: make its images (each under its own Idempotency-Key, so a job taken over reuses what was
stored), then end it. A job canceled meanwhile stores nothing more; a shut-down puts it back in the queue.
While it runs, what the generator reports through report_progress becomes the job's `progress`.
"""

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.jobs_models import Job, JobError, JobEvent, JobStatus
from pixyproxy.domain.models import Caller, ImageDetail, OnPartial, PartialImage
from pixyproxy.domain.ports.jobs import JobStore
from pixyproxy.domain.progress import reporting_to
from pixyproxy.domain.tenancy import scoped_idempotency_key
from pixyproxy.domain.usecases.generate import GenerateImage, Previews
from pixyproxy.domain.usecases.idempotency import Idempotency, Key, fingerprint
from pixyproxy.domain.usecases.jobs.board import JobBoard, error_of, image_key
from pixyproxy.domain.usecases.jobs.ending import HandOnEnd
from pixyproxy.domain.usecases.jobs.progress import PROGRESS_INTERVAL_SECONDS, JobProgress, LatestWriter
from pixyproxy.domain.usecases.several import Incomplete, make_each
from pixyproxy.domain.usecases.storing import ImageRecords, ImageWriter

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 2


class JobCanceled(Exception):
    """Raised inside a running job once it is no longer running under this worker (canceled)."""


class RunJob:
    def __init__(
        self,
        store: JobStore,
        generate: GenerateImage,
        writer: ImageWriter,
        idempotency: Idempotency,
        records: ImageRecords,
        board: JobBoard,
        hand_on: HandOnEnd,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], datetime] = utc_now,
        progress_interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.generate = generate
        self.writer = writer
        self.idempotency = idempotency
        self.records = records
        self.board = board
        self.hand_on = hand_on
        self.max_attempts = max_attempts
        self._clock = clock
        self.progress_interval = progress_interval

    async def __call__(self, job: Job, worker: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.board.running[job.id] = task
        self.board.publish(job.id, JobEvent("status", job))
        try:
            try:
                images = await self._make(job, worker)
            except Incomplete as incomplete:
                exc = incomplete.__cause__
                if isinstance(exc, JobCanceled | asyncio.CancelledError):
                    if job.id in self.board.canceling or isinstance(exc, JobCanceled):
                        return  # whoever canceled it has ended it; nothing is stored after
                    with contextlib.suppress(Exception):
                        await self.store.release(job.id, worker)  # shutting down: another worker takes it
                    raise asyncio.CancelledError() from None
                if not isinstance(exc, ImageException):
                    log.error("job %s failed unexpectedly", job.id, exc_info=exc)
                # The images made before the failure stay the job's (they were paid for).
                made: list[ImageDetail] = incomplete.made
                await self._finish(job, worker, JobStatus.failed, made, error_of(exc or Exception()))
                return
            await self._finish(job, worker, JobStatus.succeeded, images, None)
        finally:
            self.board.running.pop(job.id, None)
            self.board.canceling.discard(job.id)

    async def _make(self, job: Job, worker: str) -> list[ImageDetail]:
        """The job's images, made at once; each one's progress shown and kept as the job's."""

        async def keep(value: float) -> None:
            try:
                await self.store.set_progress(job.id, worker, value)
            finally:  # watchers here hear it once a reader elsewhere can (or the write gave up)
                self.board.publish(job.id, JobEvent("progress", {"progress": value}))

        writer = LatestWriter(keep)
        progress = JobProgress(job.request.count, writer.put, self.progress_interval)
        try:
            return await make_each(job.request.count, lambda index: self._image(job, worker, index, progress))
        finally:
            progress.close()
            await writer.close()

    async def _image(self, job: Job, worker: str, index: int, progress: JobProgress) -> ImageDetail:
        """Image `index` of the job: made, then stored only while the job still runs under `worker`."""
        request = self.generate.check(job.request.image_request())  # the limits as they are now
        owner = Caller(job.owner) if job.owner is not None else None  # the images are the submitter's
        partials = job.request.partial_images or 0
        previews = Previews(partials, self._on_partial(job, index)) if partials else None
        key = Key(scoped_idempotency_key(owner, image_key(job.id, index)), fingerprint(request))

        async def produce() -> ImageDetail:
            with reporting_to(progress.reporter(index)):
                paid = await self.generate.make(request, owner, previews)
            if not await self.store.is_running(job.id, worker):
                raise JobCanceled()
            return await self.writer.store(request, paid, owner, key)

        made = await self.idempotency.once(self.records, key, produce)
        progress.done(index)
        return made

    def _on_partial(self, job: Job, index: int) -> OnPartial:
        async def on_partial(partial: PartialImage) -> None:
            data = {
                "image": index,
                "index": partial.index,
                "b64_json": base64.b64encode(partial.data).decode(),
            }
            self.board.publish(job.id, JobEvent("partial_image", data))

        return on_partial

    async def _finish(
        self, job: Job, worker: str, status: JobStatus, images: list[ImageDetail], error: JobError | None
    ) -> None:
        ended = await self.store.finish(job.id, worker, status, self._clock(), images, error)
        if ended is not None:
            await self.hand_on(ended)

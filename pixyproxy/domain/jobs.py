"""Generation jobs: submit (the row is written before the answer), read, list, cancel, stream events, and
run one job's images (called by the worker in jobs_worker.py).

Each image of a job is made through ImageService.create under the Idempotency-Key `job:{id}:{index}`,
so a job taken over after its process died reuses what was already stored: never more than n images.
"""

import asyncio
import base64
import contextlib
import hashlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.cursor import decode_cursor, encode_cursor
from pixyproxy.domain.errors import (
    IdempotencyConflict,
    ImageException,
    InvalidImageRequest,
    JobAlreadyFinished,
    JobNotFound,
)
from pixyproxy.domain.guids import canonical_uuid
from pixyproxy.domain.jobs_models import FINISHED, Job, JobError, JobEvent, JobRequest, JobStatus
from pixyproxy.domain.models import Caller, ImageDetail, PartialImage
from pixyproxy.domain.service import (
    DEFAULT_IDEMPOTENCY_TTL_SECONDS,
    MAX_LIST_LIMIT,
    ImageService,
    safety_identifier_for,
)
from pixyproxy.ports.jobs import JobFinished, JobStore

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 2
DEFAULT_EVENTS_POLL_SECONDS = 0.5
WATCHER_QUEUE = 64  # events held for one slow stream before partial previews are dropped


class NoJobFinished:
    """The JobFinished hook when nothing listens (webhook delivery replaces it)."""

    async def job_finished(self, job: Job) -> None:
        return None


class JobCanceled(Exception):
    """Raised inside a running job once it is no longer running under this worker (canceled)."""


class _Incomplete(Exception):
    """A job's images stopped part way: the ones made, and (as the cause) why."""

    def __init__(self, made: list[ImageDetail]) -> None:
        super().__init__("the job's images stopped part way")
        self.made = made


def parse_job_id(job_id: str | UUID) -> UUID:
    if isinstance(job_id, UUID):
        return job_id
    parsed = canonical_uuid(job_id)
    if parsed is None:
        raise JobNotFound()
    return parsed


def job_fingerprint(request: JobRequest) -> str:
    return hashlib.sha256(("job:" + request.model_dump_json()).encode()).hexdigest()


def image_key(job_id: UUID, index: int) -> str:
    """The Idempotency-Key of a job's image: making image `index` of job `job_id` happens once."""
    return f"job:{job_id}:{index}"


def error_of(exc: BaseException) -> JobError:
    if isinstance(exc, ImageException):
        return JobError(code=exc.code, detail=exc.message)
    return JobError(code="internal_error", detail="An unexpected error ended the job.")


class JobService:
    def __init__(
        self,
        store: JobStore,
        images: ImageService,
        *,
        job_finished: JobFinished | None = None,
        check_webhook: Callable[[str], Any] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        events_poll_seconds: float = DEFAULT_EVENTS_POLL_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self.store = store
        self.images = images
        self.job_finished = job_finished or NoJobFinished()
        self._check_webhook = check_webhook
        self.max_attempts = max_attempts
        self.idempotency_ttl = timedelta(seconds=idempotency_ttl_seconds)
        self.events_poll_seconds = events_poll_seconds
        self._clock = clock
        self._new_id = new_id
        self._watchers: dict[UUID, set[asyncio.Queue[JobEvent]]] = {}
        # Jobs running in this process, and the ones among them being cancelled (not shut down).
        self.running: dict[UUID, asyncio.Task] = {}
        self.canceling: set[UUID] = set()
        self.on_submit: Callable[[], None] = lambda: None  # the worker's wake-up

    # -- submit ---------------------------------------------------------------------------------

    def validate(self, request: JobRequest | dict) -> JobRequest:
        try:
            data = request.model_dump() if isinstance(request, JobRequest) else request
            request = JobRequest.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidImageRequest(f"{where}: {first['msg']}") from exc
        self.images.validate(request.image_request())  # the prompt limit and the generator's own checks
        return request

    async def submit(
        self, request: JobRequest | dict, caller: Caller | None = None, idempotency_key: str | None = None
    ) -> Job:
        request = self.validate(request)
        if request.webhook_url is not None and self._check_webhook is not None:
            checked = self._check_webhook(request.webhook_url)
            if inspect.isawaitable(checked):
                await checked
        owner = caller.name if caller is not None else None
        fingerprint = job_fingerprint(request)
        if idempotency_key is not None:
            replay = await self._replay(owner, idempotency_key, fingerprint)
            if replay is not None:
                return replay
        job = Job(
            id=self._new_id(), status=JobStatus.queued, created_at=self._clock(), request=request, owner=owner
        )
        try:
            await self.store.add(job, idempotency_key, fingerprint if idempotency_key else None)
        except IdempotencyConflict:
            assert idempotency_key is not None  # another request stored the key first: answer as a replay
            replay = await self._replay(owner, idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay
        self.on_submit()
        return job

    async def _replay(self, owner: str | None, key: str, fingerprint: str) -> Job | None:
        stored = await self.store.get_by_idempotency_key(owner, key)
        if stored is None:
            return None
        cutoff = self._clock() - self.idempotency_ttl
        if stored.job.created_at < cutoff:
            await self.store.release_idempotency_key(owner, key, cutoff)
            return None
        if stored.request_hash != fingerprint:
            raise IdempotencyConflict()
        return stored.job

    # -- read -----------------------------------------------------------------------------------

    async def get(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        job = await self.store.get(parse_job_id(job_id))
        if job is None or not _visible(job, caller):
            raise JobNotFound()
        return job

    async def read(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        """The job as GET answers it."""
        (job,) = await self.show([await self.get(job_id, caller)])
        return job

    async def show(self, jobs: list[Job]) -> list[Job]:
        """The jobs as the API answers them: an image deleted since is marked so (one lookup for all)."""
        made = [image.guid for job in jobs for image in job.images]
        if not made:
            return jobs
        live = await self.images.existing(made)
        if len(live) == len(set(made)):
            return jobs
        return [
            job.model_copy(
                update={
                    "images": [
                        image if image.guid in live else image.model_copy(update={"deleted": True})
                        for image in job.images
                    ]
                }
            )
            for job in jobs
        ]

    async def list_jobs(
        self,
        caller: Caller | None = None,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidImageRequest(f"limit: must be between 1 and {MAX_LIST_LIMIT}")
        after = decode_cursor(cursor) if cursor is not None else None
        owner = None if caller is None or caller.is_admin else caller.name
        page = await self.store.list_page(owner, status, limit, after)
        return await self.show(page.items), encode_cursor(page.next) if page.next else None

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        job = await self.get(job_id, caller)
        if job.finished:
            raise JobAlreadyFinished()
        canceled = await self.store.cancel(job.id, self._clock())
        if canceled is None:
            raise JobAlreadyFinished()
        task = self.running.get(job.id)
        if task is not None:  # ours: stop the provider call now (another process sees it at its renewal)
            self.canceling.add(job.id)
            task.cancel()
        await self.ended(canceled)
        return canceled

    # -- events ---------------------------------------------------------------------------------

    async def events(self, job_id: str | UUID, caller: Caller | None = None) -> AsyncIterator[JobEvent]:
        """The job's state now, a `status` event on each change, `partial_image` previews where this
        process runs the job, and `done` once it has ended. Changes made by another process are seen
        by polling the store."""
        job = await self.get(job_id, caller)
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(WATCHER_QUEUE)
        watchers = self._watchers.setdefault(job.id, set())
        watchers.add(queue)
        try:
            job = await self.get(job.id, caller)  # read again once subscribed: no change falls between
            yield JobEvent("status", job)
            last = (job.status, job.attempts)
            while not job.finished:
                try:
                    async with asyncio.timeout(self.events_poll_seconds):
                        event = await queue.get()
                except TimeoutError:
                    event = None
                if event is not None and event.name != "status":
                    yield event
                    continue
                fresh = event.data if event is not None else await self.store.get(job.id)
                if fresh is None:
                    return
                job = fresh
                if (job.status, job.attempts) != last:
                    last = (job.status, job.attempts)
                    yield JobEvent("status", job)
            yield JobEvent("done", job)
        finally:
            watchers.discard(queue)
            if not watchers:
                self._watchers.pop(job.id, None)

    def publish(self, job_id: UUID, event: JobEvent) -> None:
        for queue in self._watchers.get(job_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                if event.name == "status":  # a status must get through; drop an old preview for it
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(event)

    # -- running (the worker calls these) -------------------------------------------------------

    async def run(self, job: Job, worker: str) -> None:
        """Make the job's images and end it. A job canceled meanwhile stores nothing more; a shut-down
        puts the job back in the queue."""
        self.running[job.id] = asyncio.current_task()  # type: ignore[assignment]
        self.publish(job.id, JobEvent("status", job))
        try:
            try:
                images = await self._make_images(job, worker)
            except _Incomplete as incomplete:
                exc = incomplete.__cause__
                if isinstance(exc, JobCanceled | asyncio.CancelledError):
                    if job.id in self.canceling or isinstance(exc, JobCanceled):
                        return  # whoever canceled it has ended it; nothing is stored after
                    with contextlib.suppress(Exception):
                        await self.store.release(job.id, worker)  # shutting down: another worker takes it
                    raise asyncio.CancelledError() from None
                if not isinstance(exc, ImageException):
                    log.error("job %s failed unexpectedly", job.id, exc_info=exc)
                # The images made before the failure stay the job's (they were paid for).
                await self._finish(job, worker, JobStatus.failed, incomplete.made, error_of(exc))
                return
            await self._finish(job, worker, JobStatus.succeeded, images, None)
        finally:
            self.running.pop(job.id, None)
            self.canceling.discard(job.id)

    async def _make_images(self, job: Job, worker: str) -> list[ImageDetail]:
        request = job.request.image_request()
        partials = job.request.partial_images or 0
        safety = safety_identifier_for(job.owner)
        owner = Caller(job.owner) if job.owner is not None else None  # the images are the submitter's

        async def still_running() -> None:
            if not await self.store.is_running(job.id, worker):
                raise JobCanceled()

        def on_partial_for(index: int) -> Callable[[PartialImage], Awaitable[None]]:
            async def on_partial(partial: PartialImage) -> None:
                data = {
                    "image": index,
                    "index": partial.index,
                    "b64_json": base64.b64encode(partial.data).decode(),
                }
                self.publish(job.id, JobEvent("partial_image", data))

            return on_partial

        async def one(index: int) -> ImageDetail:
            return await self.images.create(
                request,
                image_key(job.id, index),
                safety_identifier=safety,
                partial_images=partials,
                on_partial=on_partial_for(index) if partials else None,
                before_store=still_running,
                caller=owner,
            )

        tasks = [asyncio.create_task(one(index)) for index in range(job.request.count)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException as exc:
            # One image failed (or the job was stopped): stop the others, so nothing is stored after.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            made = [t.result() for t in tasks if not t.cancelled() and t.exception() is None]
            raise _Incomplete(made) from exc

    async def _finish(
        self, job: Job, worker: str, status: JobStatus, images: list[ImageDetail], error: JobError | None
    ) -> None:
        ended = await self.store.finish(job.id, worker, status, self._clock(), images, error)
        if ended is not None:
            await self.ended(ended)

    async def ended(self, job: Job) -> None:
        """A job's row says it ended: tell watchers and the JobFinished hook, then mark it told."""
        assert job.status in FINISHED
        self.publish(job.id, JobEvent("status", job))
        try:
            await self.job_finished.job_finished(job)
            await self.store.mark_notified(job.id)
        except Exception:  # the sweep tells it again
            log.warning("job %s ended, but its end could not be handed on yet; retrying later", job.id)


def _visible(job: Job, caller: Caller | None) -> bool:
    return caller is None or caller.is_admin or job.owner == caller.name

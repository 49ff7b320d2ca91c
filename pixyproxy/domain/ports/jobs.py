"""Ports of generation jobs: the durable job store (SQLite or MySQL) and the hook told when a job ends."""

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from uuid import UUID

from pixyproxy.domain.jobs_models import Job, JobError, JobPage, JobStatus, StoredJob
from pixyproxy.domain.models import ImageDetail, PagePosition


class JobStore(Protocol):
    """The `jobs` table. A queued job waits here, not in memory; a worker claims it with a lease.

    Every method raises MetadataUnavailable when the store cannot be reached. Times are the caller's
    clock (UTC); `worker` names one worker loop of one process.
    """

    name: str

    async def init(self) -> None:
        """Create the table (and its indexes) if missing; idempotent."""
        ...

    async def add(
        self, job: Job, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        """Insert a queued job. Another job of the same owner with the same key raises IdempotencyConflict."""
        ...

    async def get(self, job_id: UUID) -> Job | None: ...

    async def get_by_idempotency_key(self, owner: str | None, key: str) -> StoredJob | None: ...

    async def release_idempotency_key(self, owner: str | None, key: str, older_than: datetime) -> None:
        """Free an expired key (only on a job created before `older_than`); the job stays."""
        ...

    async def list_page(
        self, owner: str | None, status: JobStatus | None, limit: int, after: PagePosition | None = None
    ) -> JobPage:
        """Newest first; only `owner`'s jobs unless owner is None (everyone's)."""
        ...

    async def claim(
        self, worker: str, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[Job]:
        """Atomically take up to `limit` jobs: queued ones, oldest first, and running ones whose lease
        ran out before `now` with fewer than `max_attempts` attempts. Each becomes running under
        `worker` until `lease_until`, its attempts one more. Two workers never get the same job."""
        ...

    async def fail_abandoned(self, now: datetime, max_attempts: int, error: JobError) -> list[Job]:
        """Running jobs whose lease ran out with `max_attempts` attempts made end failed with `error`."""
        ...

    async def renew(self, worker: str, lease_until: datetime, job_ids: Iterable[UUID]) -> set[UUID]:
        """Extend the leases of these jobs where they are still running under `worker`; returns those
        ids (a job canceled or taken over meanwhile is missing)."""
        ...

    async def is_running(self, job_id: UUID, worker: str) -> bool:
        """Whether the job is still running under `worker`'s lease."""
        ...

    async def set_progress(self, job_id: UUID, worker: str, progress: float) -> None:
        """Keep the job's progress (0..1) while it is running under `worker`; otherwise change nothing."""
        ...

    async def finish(
        self,
        job_id: UUID,
        worker: str,
        status: JobStatus,
        finished_at: datetime,
        images: list[ImageDetail],
        error: JobError | None = None,
    ) -> Job | None:
        """End a job running under `worker`; None (and no change) when it is not (canceled, taken over).
        A job that succeeded has progress 1; otherwise its progress stays as it was."""
        ...

    async def cancel(self, job_id: UUID, finished_at: datetime) -> Job | None:
        """Cancel a queued or running job; None (and no change) when it had already ended."""
        ...

    async def release(self, job_id: UUID, worker: str) -> None:
        """Put a job running under `worker` back in the queue, its attempt not counted (shut-down)."""
        ...

    async def unnotified(self, finished_before: datetime, limit: int) -> list[Job]:
        """Ended jobs whose JobFinished hook has not been marked done."""
        ...

    async def mark_notified(self, job_id: UUID) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class JobFinished(Protocol):
    """Told once a job has ended (succeeded, failed or canceled), right after its row says so.

    Called at least once per ended job: by the process that ended it, and again by any worker's sweep
    if that process died before the call returned, so an implementation must be idempotent per job id
    (e.g. a delivery row keyed by the job id). It should return quickly (enqueue, not deliver) and may
    raise: the sweep calls it again later.
    """

    async def job_finished(self, job: Job) -> None: ...

"""Read and list jobs: a user key its own, an admin every key's; an image deleted since is marked so."""

from uuid import UUID

from pixyproxy.domain.cursor import decode_cursor, encode_cursor
from pixyproxy.domain.errors import JobNotFound
from pixyproxy.domain.ids import parse_job_id
from pixyproxy.domain.jobs_models import Job, JobStatus
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.jobs import JobStore
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.tenancy import owner_filter, sees
from pixyproxy.domain.usecases.listing import DEFAULT_LIST_LIMIT, check_limit


class ReadJobs:
    def __init__(self, store: JobStore, repository: ImageRepository) -> None:
        self.store = store
        self.repository = repository

    async def get(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        """The job's row as stored (another key's job is not found)."""
        job = await self.store.get(parse_job_id(job_id))
        if job is None or not sees(caller, job.owner):
            raise JobNotFound()
        return job

    async def __call__(self, job_id: str | UUID, caller: Caller | None = None) -> Job:
        """The job as GET answers it."""
        (job,) = await self.shown([await self.get(job_id, caller)])
        return job

    async def page(
        self,
        caller: Caller | None = None,
        status: JobStatus | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        found = await self.store.list_page(owner_filter(caller), status, limit, after)
        return await self.shown(found.items), encode_cursor(found.next) if found.next else None

    async def shown(self, jobs: list[Job]) -> list[Job]:
        """The jobs as the API answers them: an image deleted since is marked so (one lookup for all)."""
        made = [image.guid for job in jobs for image in job.images]
        if not made:
            return jobs
        live = await self.repository.existing(made)
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

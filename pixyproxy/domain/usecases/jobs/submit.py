"""Submit a job: checked, its webhook_url checked, written queued before the answer (202)."""

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.jobs_models import Job, JobRequest, JobStatus
from pixyproxy.domain.models import Caller, GenerationRequest
from pixyproxy.domain.ports.jobs import JobStore
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usecases.idempotency import Idempotency, Remembered
from pixyproxy.domain.usecases.jobs.board import JobBoard, job_fingerprint
from pixyproxy.domain.usecases.validation import RequestRules, validated


class JobRecords:
    """One owner's jobs as the idempotency policy reads them."""

    kind = "job"

    def __init__(self, store: JobStore, owner: str | None) -> None:
        self.store = store
        self.owner = owner

    async def remembered(self, key: str) -> Remembered[Job] | None:
        stored = await self.store.get_by_idempotency_key(self.owner, key)
        if stored is None:
            return None
        return Remembered(stored.job, stored.request_hash, stored.job.created_at)

    async def release(self, key: str, older_than: datetime) -> None:
        await self.store.release_idempotency_key(self.owner, key, older_than)


class SubmitJob:
    def __init__(
        self,
        store: JobStore,
        rules: RequestRules,
        idempotency: Idempotency,
        board: JobBoard,
        *,
        check_webhook: Callable[[str], Any] | None = None,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self.store = store
        self.rules = rules
        self.idempotency = idempotency
        self.board = board
        self._check_webhook = check_webhook
        self._clock = clock
        self._new_id = new_id

    def check(self, request: JobRequest | Mapping[str, Any]) -> JobRequest:
        job_request = validated(JobRequest, request)
        self.rules.check(job_request.image_request(), GenerationRequest)
        return job_request

    async def __call__(
        self,
        request: JobRequest | Mapping[str, Any],
        caller: Caller | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        checked = self.check(request)
        if checked.webhook_url is not None and self._check_webhook is not None:
            outcome = self._check_webhook(checked.webhook_url)
            if inspect.isawaitable(outcome):
                await outcome
        owner = owner_of(caller)
        key = self.idempotency.key(caller, idempotency_key, job_fingerprint(checked))

        async def produce() -> Job:
            job = Job(
                id=self._new_id(),
                status=JobStatus.queued,
                created_at=self._clock(),
                request=checked,
                owner=owner,
            )
            await self.store.add(job, key.stored if key else None, key.fingerprint if key else None)
            self.board.on_submit()
            return job

        if key is None:
            return await produce()
        return await self.idempotency.once(JobRecords(self.store, owner), key, produce)

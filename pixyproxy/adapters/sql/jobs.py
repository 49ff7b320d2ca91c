"""The JobStore port on the SQL layer, for SQLite and MySQL alike: the `jobs` table (statements and row
mapping in job_rows.py).

A claim is one write transaction: pick the rows (MySQL: FOR UPDATE SKIP LOCKED, so replicas claiming at
once each skip the rows another holds; SQLite: BEGIN IMMEDIATE already excludes every other writer),
take them under this worker's lease, read them back. Every other change is one conditional UPDATE, so
two workers never run or end the same job.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from pixyproxy.adapters.sql import job_rows as q
from pixyproxy.adapters.sql.database import Database, Tx
from pixyproxy.adapters.sql.dialect import LOCK_PICKED
from pixyproxy.adapters.sql.errors import Duplicate
from pixyproxy.adapters.sql.image_rows import chunks
from pixyproxy.domain.errors import IdempotencyConflict, MetadataOutcomeUnknown, MetadataUnavailable
from pixyproxy.domain.jobs_models import Job, JobError, JobPage, JobStatus, StoredJob
from pixyproxy.domain.models import ImageDetail, PagePosition

# READ COMMITTED on MySQL: the locking reads take no gap locks, so submits (INSERTs) neither wait on nor
# deadlock with a claim in progress. SQLite has one isolation (serialised writers).
CLAIM_ISOLATION = {"mysql": "READ COMMITTED", "sqlite": None}


class SQLJobStore:
    def __init__(self, database: Database) -> None:
        self.db = database
        self.name = database.name

    async def init(self) -> None:
        await self.db.init()

    def _stamp(self, value: datetime) -> Any:
        return self.db.dialect.stamp(value)

    async def add(
        self, job: Job, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        params = q.insert_params(job, idempotency_key, request_hash)
        params["created_at"] = self._stamp(params["created_at"])
        try:
            await self.db.execute(q.INSERT, params)
        except MetadataOutcomeUnknown as unknown:
            try:  # the COMMIT went unanswered: the job's own row says whether it was kept
                kept = await self.get(job.id) is not None
            except MetadataUnavailable:
                raise unknown from None
            if not kept:
                raise MetadataUnavailable(f"the job was not recorded: {unknown}") from unknown
        except Duplicate as exc:
            if idempotency_key is not None and exc.constraint == "uq_jobs_owner_key":
                raise IdempotencyConflict() from exc
            if exc.constraint == "uq_jobs_job_id" and await self.get(job.id) is not None:
                return  # run again after a lost connection: the first INSERT was committed
            raise MetadataUnavailable(f"the job could not be recorded: {exc}") from exc

    async def get(self, job_id: UUID) -> Job | None:
        rows = await self.db.rows(q.GET, {"job_id": str(job_id)}, by_key=True)
        return q.row_to_job(rows[0])[0] if rows else None

    async def get_by_idempotency_key(self, owner: str | None, key: str) -> StoredJob | None:
        rows = await self.db.rows(q.GET_BY_KEY, {"owner": q.owner_value(owner), "key": key}, by_key=True)
        if not rows:
            return None
        job, _, request_hash = q.row_to_job(rows[0])
        return StoredJob(job, request_hash or "")

    async def release_idempotency_key(self, owner: str | None, key: str, older_than: datetime) -> None:
        params = {"owner": q.owner_value(owner), "key": key, "older_than": self._stamp(older_than)}
        await self.db.execute(q.RELEASE_KEY, params, idempotent=True)

    async def list_page(
        self, owner: str | None, status: JobStatus | None, limit: int, after: PagePosition | None = None
    ) -> JobPage:
        after = after or q.FIRST_POSITION
        params = {
            "owner": q.owner_value(owner),
            "status": status.value if status else None,
            "limit": limit + 1,
            "created_at": self._stamp(after.created_at),
            "id": after.id,
        }
        rows = await self.db.rows(q.LIST[(owner is not None, status is not None)], params)
        return q.page_from_rows(rows, limit)

    async def _take(self, picks: list[str], change: str, params: dict[str, Any]) -> list[Job]:
        """In one write transaction: pick rows with `picks` up to params' limit, apply `change` (an
        UPDATE ... WHERE id IN) to them, and read them back."""
        lock = LOCK_PICKED[self.name]

        async def work(tx: Tx) -> list[Job]:
            ids: list[int] = []
            for pick in picks:
                if len(ids) >= params["limit"]:
                    break
                rows = await tx.rows(pick + lock, {**params, "limit": params["limit"] - len(ids)})
                ids.extend(row[0] for row in rows)
            if not ids:
                return []
            marks = {f"i{n}": value for n, value in enumerate(ids)}
            in_list = ", ".join(f":{name}" for name in marks)
            await tx.execute(f"{change} ({in_list})", {**params, **marks})
            return [q.row_to_job(row)[0] for row in await tx.rows(f"{q.SELECT_BY_IDS} ({in_list})", marks)]

        return await self.db.run(work, isolation=CLAIM_ISOLATION[self.name])

    async def claim(
        self, worker: str, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[Job]:
        params = {
            "worker": worker,
            "now": self._stamp(now),
            "lease_until": self._stamp(lease_until),
            "limit": limit,
            "max_attempts": max_attempts,
        }
        return await self._take([q.CLAIMABLE_QUEUED, q.CLAIMABLE_EXPIRED], q.CLAIM_BY_IDS, params)

    async def fail_abandoned(self, now: datetime, max_attempts: int, error: JobError) -> list[Job]:
        params = {
            "now": self._stamp(now),
            "max_attempts": max_attempts,
            "limit": 100,
            "error_code": error.code,
            "error_detail": error.detail,
        }
        return await self._take([q.ABANDONED], q.ABANDON_BY_IDS, params)

    async def renew(self, worker: str, lease_until: datetime, job_ids: Iterable[UUID]) -> set[UUID]:
        mine: set[UUID] = set()
        for chunk in chunks([str(j) for j in job_ids]):
            ids = {f"j{i}": j for i, j in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in ids)
            params = {"worker": worker, "lease_until": self._stamp(lease_until), **ids}

            async def work(tx: Tx, marks: str = marks, params: dict = params) -> list:
                await tx.execute(f"{q.RENEW} ({marks})", params)
                return list(await tx.rows(f"{q.MINE} ({marks})", params))

            mine.update(UUID(row[0]) for row in await self.db.run(work, idempotent=True))
        return mine

    async def is_running(self, job_id: UUID, worker: str) -> bool:
        return bool(await self.db.rows(q.IS_RUNNING, {"job_id": str(job_id), "worker": worker}, by_key=True))

    async def set_progress(self, job_id: UUID, worker: str, progress: float) -> None:
        params = {"job_id": str(job_id), "worker": worker, "progress": progress}
        await self.db.execute(q.SET_PROGRESS, params, idempotent=True)

    async def _change_then_read(self, change: str, params: dict[str, Any]) -> Job | None:
        async def work(tx: Tx) -> Job | None:
            if not await tx.execute(change, params):
                return None
            rows = await tx.rows(q.GET, {"job_id": params["job_id"]})
            return q.row_to_job(rows[0])[0] if rows else None

        return await self.db.run(work)

    async def finish(
        self,
        job_id: UUID,
        worker: str,
        status: JobStatus,
        finished_at: datetime,
        images: list[ImageDetail],
        error: JobError | None = None,
    ) -> Job | None:
        params = q.finish_params(str(job_id), worker, status, images, error)
        params["finished_at"] = self._stamp(finished_at)
        return await self._change_then_read(q.FINISH, params)

    async def cancel(self, job_id: UUID, finished_at: datetime) -> Job | None:
        return await self._change_then_read(
            q.CANCEL, {"job_id": str(job_id), "finished_at": self._stamp(finished_at)}
        )

    async def release(self, job_id: UUID, worker: str) -> None:
        await self.db.execute(q.RELEASE, {"job_id": str(job_id), "worker": worker})

    async def unnotified(self, finished_before: datetime, limit: int) -> list[Job]:
        params = {"finished_before": self._stamp(finished_before), "limit": limit}
        return [q.row_to_job(row)[0] for row in await self.db.rows(q.UNNOTIFIED, params)]

    async def mark_notified(self, job_id: UUID) -> None:
        await self.db.execute(q.MARK_NOTIFIED, {"job_id": str(job_id)}, idempotent=True)

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

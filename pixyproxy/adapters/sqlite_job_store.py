"""The job store on SQLite (the embedded default): the `jobs` table beside `images`, in the same file.

Statements run on the event loop's thread, as in sqlite_repository.py. A claim is one UPDATE ...
RETURNING: SQLite runs it under its write lock, so even several processes on one file never claim the
same job twice.
"""

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from pixyproxy.adapters import job_rows as q
from pixyproxy.adapters.rows import chunks
from pixyproxy.adapters.sqlite_file import SQLiteFile, stamp
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.jobs_models import Job, JobError, JobPage, JobStatus, StoredJob
from pixyproxy.domain.models import ImageDetail, PagePosition

# Each step is safe to run again; they run at every start, in order.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        request_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        attempts INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until TEXT,
        images_json TEXT NOT NULL,
        error_code TEXT,
        error_detail TEXT,
        idempotency_key TEXT,
        request_hash TEXT,
        notified INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_key ON jobs (owner, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS jobs_created_at_id ON jobs (created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS jobs_owner_created_at_id ON jobs (owner, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS jobs_status_id ON jobs (status, id)",
    "CREATE INDEX IF NOT EXISTS jobs_status_lease ON jobs (status, lease_until)",
    "CREATE INDEX IF NOT EXISTS jobs_lease_owner ON jobs (lease_owner)",
    "CREATE INDEX IF NOT EXISTS jobs_unnotified ON jobs (notified, id)",
)

GET = q.sqlite_style(q.GET)
GET_BY_KEY = q.sqlite_style(q.GET_BY_KEY)
INSERT = q.sqlite_style(q.INSERT)
RELEASE_KEY = q.sqlite_style(q.RELEASE_KEY)
LIST = {shape: q.sqlite_style(sql) for shape, sql in q.LIST.items()}
CLAIM = q.sqlite_style(q.CLAIM_RETURNING)
ABANDON = q.sqlite_style(q.ABANDON_RETURNING)
RENEW = q.sqlite_style(q.RENEW)
MINE = q.sqlite_style(q.MINE)
IS_RUNNING = q.sqlite_style(q.IS_RUNNING)
FINISH = q.sqlite_style(f"{q.FINISH} RETURNING {q.COLUMN_LIST}")
CANCEL = q.sqlite_style(f"{q.CANCEL} RETURNING {q.COLUMN_LIST}")
RELEASE = q.sqlite_style(q.RELEASE)
UNNOTIFIED = q.sqlite_style(q.UNNOTIFIED)
MARK_NOTIFIED = q.sqlite_style(q.MARK_NOTIFIED)


class SQLiteJobStore(SQLiteFile):
    async def init(self) -> None:
        for statement in SCHEMA:
            self._run(statement)

    async def add(
        self, job: Job, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        params = q.insert_params(job, idempotency_key, request_hash)
        params["created_at"] = stamp(params["created_at"])
        try:
            self._run(INSERT, params)
        except sqlite3.IntegrityError as exc:
            if idempotency_key is not None and "idempotency_key" in str(exc):
                raise IdempotencyConflict() from exc
            raise MetadataUnavailable(f"the job could not be recorded: {exc}") from exc

    async def get(self, job_id: UUID) -> Job | None:
        rows = self._run(GET, {"job_id": str(job_id)})
        return q.row_to_job(rows[0])[0] if rows else None

    async def get_by_idempotency_key(self, owner: str | None, key: str) -> StoredJob | None:
        rows = self._run(GET_BY_KEY, {"owner": q.owner_value(owner), "key": key})
        if not rows:
            return None
        job, _, request_hash = q.row_to_job(rows[0])
        return StoredJob(job, request_hash or "")

    async def release_idempotency_key(self, owner: str | None, key: str, older_than: datetime) -> None:
        params = {"owner": q.owner_value(owner), "key": key, "older_than": stamp(older_than)}
        self._run(RELEASE_KEY, params)

    async def list_page(
        self, owner: str | None, status: JobStatus | None, limit: int, after: PagePosition | None = None
    ) -> JobPage:
        after = after or q.FIRST_POSITION
        params = {
            "owner": q.owner_value(owner),
            "status": status.value if status else None,
            "limit": limit + 1,
            "created_at": stamp(after.created_at),
            "id": after.id,
        }
        rows = self._run(LIST[(owner is not None, status is not None)], params)
        return q.page_from_rows(rows, limit)

    async def claim(
        self, worker: str, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[Job]:
        params = {
            "worker": worker,
            "now": stamp(now),
            "lease_until": stamp(lease_until),
            "limit": limit,
            "max_attempts": max_attempts,
        }
        return [q.row_to_job(row)[0] for row in self._run(CLAIM, params)]

    async def fail_abandoned(self, now: datetime, max_attempts: int, error: JobError) -> list[Job]:
        params = {
            "now": stamp(now),
            "max_attempts": max_attempts,
            "limit": 100,
            "error_code": error.code,
            "error_detail": error.detail,
        }
        return [q.row_to_job(row)[0] for row in self._run(ABANDON, params)]

    async def renew(self, worker: str, lease_until: datetime, job_ids: Iterable[UUID]) -> set[UUID]:
        mine: set[UUID] = set()
        for chunk in chunks([str(j) for j in job_ids]):
            ids = {f"j{i}": j for i, j in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in ids)
            params = {"worker": worker, "lease_until": stamp(lease_until), **ids}
            self._run(f"{RENEW} ({marks})", params)
            mine.update(UUID(row[0]) for row in self._run(f"{MINE} ({marks})", params))
        return mine

    async def is_running(self, job_id: UUID, worker: str) -> bool:
        return bool(self._run(IS_RUNNING, {"job_id": str(job_id), "worker": worker}))

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
        params["finished_at"] = stamp(finished_at)
        rows = self._run(FINISH, params)
        return q.row_to_job(rows[0])[0] if rows else None

    async def cancel(self, job_id: UUID, finished_at: datetime) -> Job | None:
        rows = self._run(CANCEL, {"job_id": str(job_id), "finished_at": stamp(finished_at)})
        return q.row_to_job(rows[0])[0] if rows else None

    async def release(self, job_id: UUID, worker: str) -> None:
        self._run(RELEASE, {"job_id": str(job_id), "worker": worker})

    async def unnotified(self, finished_before: datetime, limit: int) -> list[Job]:
        rows = self._run(UNNOTIFIED, {"finished_before": stamp(finished_before), "limit": limit})
        return [q.row_to_job(row)[0] for row in rows]

    async def mark_notified(self, job_id: UUID) -> None:
        self._run(MARK_NOTIFIED, {"job_id": str(job_id)})

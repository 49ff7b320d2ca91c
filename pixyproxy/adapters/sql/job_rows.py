"""What the SQL job stores (SQLite, MySQL) share about the `jobs` table: the column list, the row
mapping and every statement, written once with :name parameters.

A job waits as a row with status `queued`; a worker claims it by setting status `running`, its own
name in lease_owner and lease_until a little ahead, and keeps renewing lease_until while it runs. The
only times in these rows are the application's (UTC): replicas need synchronised clocks (NTP).
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pixyproxy.domain.jobs_models import Job, JobError, JobPage, JobRequest, JobStatus
from pixyproxy.domain.models import ImageDetail, PagePosition

# Every SELECT returns these, in this order.
JOB_COLUMNS = (
    "id",
    "request_hash",
    "job_id",
    "owner",
    "status",
    "request_json",
    "created_at",
    "started_at",
    "finished_at",
    "attempts",
    "images_json",
    "error_code",
    "error_detail",
    "progress",
)
COLUMN_LIST = ", ".join(JOB_COLUMNS)
# The owner of jobs submitted with API keys off: a value, so (owner, idempotency_key) stays unique.
NO_OWNER = ""
# Where a first page starts: after every real row.
FIRST_POSITION = PagePosition(created_at=datetime(9999, 12, 31, tzinfo=UTC), id=2**63 - 1)

_images = json.dumps
SELECT = f"SELECT {COLUMN_LIST} FROM jobs"  # noqa: S608
GET = f"{SELECT} WHERE job_id = :job_id"
GET_BY_KEY = f"{SELECT} WHERE owner = :owner AND idempotency_key = :key"
INSERT = (
    "INSERT INTO jobs (job_id, owner, status, request_json, created_at, attempts, images_json, "
    "idempotency_key, request_hash, notified) VALUES (:job_id, :owner, 'queued', :request_json, "
    ":created_at, 0, '[]', :key, :request_hash, 0)"
)
RELEASE_KEY = (
    "UPDATE jobs SET idempotency_key = NULL, request_hash = NULL "
    "WHERE owner = :owner AND idempotency_key = :key AND created_at < :older_than"
)
# Keyset paging, newest first; spelled out (not a row comparison) so both servers use the index.
AFTER = "(created_at < :created_at OR (created_at = :created_at AND id < :id))"
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC LIMIT :limit"
LIST_ALL = f"{SELECT} WHERE {AFTER} {NEWEST_FIRST}"
LIST_STATUS = f"{SELECT} WHERE status = :status AND {AFTER} {NEWEST_FIRST}"
LIST_OWNER = f"{SELECT} WHERE owner = :owner AND {AFTER} {NEWEST_FIRST}"
LIST_OWNER_STATUS = f"{SELECT} WHERE owner = :owner AND status = :status AND {AFTER} {NEWEST_FIRST}"
LIST = {
    (False, False): LIST_ALL,
    (False, True): LIST_STATUS,
    (True, False): LIST_OWNER,
    (True, True): LIST_OWNER_STATUS,
}
# What a claim may take: queued jobs oldest first, then jobs whose worker stopped renewing its lease.
CLAIMABLE_QUEUED = "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT :limit"
CLAIMABLE_EXPIRED = (
    "SELECT id FROM jobs WHERE status = 'running' AND lease_until < :now AND attempts < :max_attempts "
    "ORDER BY lease_until LIMIT :limit"
)
ABANDONED = (
    "SELECT id FROM jobs WHERE status = 'running' AND lease_until < :now "
    "AND attempts >= :max_attempts ORDER BY lease_until LIMIT :limit"
)
CLAIM_SET = (
    "SET status = 'running', lease_owner = :worker, lease_until = :lease_until, "
    "attempts = attempts + 1, started_at = COALESCE(started_at, :now)"
)
ABANDON_SET = (
    "SET status = 'failed', finished_at = :now, lease_owner = NULL, lease_until = NULL, "
    "error_code = :error_code, error_detail = :error_detail"
)
# Followed by one :jN marker per job id: only the jobs a worker really runs are renewed, so a job whose
# task ended without its row saying so (the store down at the end) runs out of lease and is taken over.
RENEW = (
    "UPDATE jobs SET lease_until = :lease_until "
    "WHERE lease_owner = :worker AND status = 'running' AND job_id IN"
)
MINE = "SELECT job_id FROM jobs WHERE lease_owner = :worker AND status = 'running' AND job_id IN"
SET_PROGRESS = (
    "UPDATE jobs SET progress = :progress "
    "WHERE job_id = :job_id AND status = 'running' AND lease_owner = :worker"
)
IS_RUNNING = "SELECT 1 FROM jobs WHERE job_id = :job_id AND status = 'running' AND lease_owner = :worker"
FINISH = (
    "UPDATE jobs SET status = :status, finished_at = :finished_at, images_json = :images_json, "
    "error_code = :error_code, error_detail = :error_detail, progress = COALESCE(:progress, progress), "
    "lease_owner = NULL, lease_until = NULL WHERE job_id = :job_id AND status = 'running' "
    "AND lease_owner = :worker"
)
CANCEL = (
    "UPDATE jobs SET status = 'canceled', finished_at = :finished_at, lease_until = NULL "
    "WHERE job_id = :job_id AND status IN ('queued', 'running')"
)
RELEASE = (
    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL, attempts = attempts - 1 "
    "WHERE job_id = :job_id AND status = 'running' AND lease_owner = :worker"
)
UNNOTIFIED = (
    f"{SELECT} WHERE notified = 0 AND status IN ('succeeded', 'failed', 'canceled') "
    "AND finished_at < :finished_before ORDER BY id LIMIT :limit"
)
MARK_NOTIFIED = "UPDATE jobs SET notified = 1 WHERE job_id = :job_id"

# A claim locks the rows it picks first (dialect.LOCK_PICKED), then updates them by id (followed by one
# :iN marker per id) and reads them back.
CLAIM_BY_IDS = f"UPDATE jobs {CLAIM_SET} WHERE id IN"
ABANDON_BY_IDS = f"UPDATE jobs {ABANDON_SET} WHERE id IN"
SELECT_BY_IDS = f"{SELECT} WHERE id IN"


def owner_value(owner: str | None) -> str:
    return NO_OWNER if owner is None else owner


def insert_params(job: Job, key: str | None, request_hash: str | None) -> dict[str, Any]:
    """INSERT's values; created_at an aware UTC datetime, which each adapter converts."""
    return {
        "job_id": str(job.id),
        "owner": owner_value(job.owner),
        "request_json": job.request.model_dump_json(exclude_none=True),
        "created_at": job.created_at.astimezone(UTC),
        "key": key,
        "request_hash": request_hash,
    }


def finish_params(
    job_id: str, worker: str, status: JobStatus, images: list[ImageDetail], error: JobError | None
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "worker": worker,
        "status": status.value,
        "images_json": json.dumps([json.loads(d.model_dump_json()) for d in images]),
        "error_code": error.code if error else None,
        "error_detail": error.detail if error else None,
        "progress": 1.0 if status == JobStatus.succeeded else None,  # a failure keeps how far it got
    }


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def row_to_job(row: Sequence[Any]) -> tuple[Job, int, str | None]:
    """A row in JOB_COLUMNS order: the job, its keyset id and its idempotency request hash."""
    values = dict(zip(JOB_COLUMNS, row, strict=True))
    error = None
    if values["error_code"] is not None:
        error = JobError(code=values["error_code"], detail=values["error_detail"] or "")
    job = Job(
        id=values["job_id"],
        status=JobStatus(values["status"]),
        created_at=_time(values["created_at"]),
        started_at=_time(values["started_at"]),
        finished_at=_time(values["finished_at"]),
        request=JobRequest.model_validate_json(values["request_json"]),
        images=[ImageDetail.model_validate(d) for d in json.loads(values["images_json"] or "[]")],
        error=error,
        attempts=values["attempts"],
        progress=values["progress"],
        owner=values["owner"] or None,
    )
    return job, values["id"], values["request_hash"]


def page_from_rows(rows: Sequence[Sequence[Any]], limit: int) -> JobPage:
    mapped = [row_to_job(row) for row in rows[:limit]]
    next_position = None
    if len(rows) > limit:
        last, last_id, _ = mapped[-1]
        next_position = PagePosition(created_at=last.created_at, id=last_id)
    return JobPage(items=[job for job, _, _ in mapped], next=next_position)

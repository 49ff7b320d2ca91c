"""The job store on MySQL 8 / MariaDB 10.6+: the `jobs` table, statements shared with SQLite (job_rows.py).

A claim is one transaction: SELECT ... FOR UPDATE SKIP LOCKED picks rows no other replica is claiming at
that moment (a locked row is skipped, not waited for), then an UPDATE takes them under this worker's
lease. Every other change is one conditional UPDATE, so two replicas never run or end the same job.
Its own small pool (pool.py) beside the image repository's, with the same settings.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pymysql import err as my

from pixyproxy.adapters import job_rows as q
from pixyproxy.adapters.mysql.config import MySQLConfig, parse_mysql_url
from pixyproxy.adapters.mysql.errors import DEADLOCK, DUPLICATE_ENTRY, connection_lost, error_code
from pixyproxy.adapters.mysql.pool import Pool, connect_to, utc_naive
from pixyproxy.adapters.rows import chunks
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.jobs_models import Job, JobError, JobPage, JobStatus, StoredJob
from pixyproxy.domain.models import ImageDetail, PagePosition

log = logging.getLogger(__name__)
T = TypeVar("T")

# Run at every start; each is safe to run again.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id BIGINT NOT NULL AUTO_INCREMENT,
        job_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        owner VARCHAR(255) NOT NULL,
        status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        request_json MEDIUMTEXT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        started_at DATETIME(6) NULL,
        finished_at DATETIME(6) NULL,
        attempts INT NOT NULL,
        lease_owner VARCHAR(160) NULL,
        lease_until DATETIME(6) NULL,
        images_json MEDIUMTEXT NOT NULL,
        error_code VARCHAR(64) NULL,
        error_detail TEXT NULL,
        idempotency_key VARCHAR(255) NULL,
        request_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
        notified TINYINT NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_jobs_job_id (job_id),
        UNIQUE KEY uq_jobs_owner_key (owner, idempotency_key),
        KEY ix_jobs_created_at_id (created_at DESC, id DESC),
        KEY ix_jobs_owner_created_at_id (owner, created_at DESC, id DESC),
        KEY ix_jobs_status_id (status, id),
        KEY ix_jobs_status_lease (status, lease_until),
        KEY ix_jobs_lease_owner (lease_owner),
        KEY ix_jobs_unnotified (notified, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
    """,
)
TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'jobs'"
)
LOCKED = " FOR UPDATE SKIP LOCKED"
CLAIMABLE_QUEUED = q.CLAIMABLE_QUEUED + LOCKED
CLAIMABLE_EXPIRED = q.CLAIMABLE_EXPIRED + LOCKED
ABANDONED = q.ABANDONED + LOCKED
CLAIM = q.CLAIM_BY_IDS
ABANDON = q.ABANDON_BY_IDS
BY_IDS = q.SELECT_BY_IDS
RENEW = q.RENEW
MINE = q.MINE
DEADLOCK_RETRIES = 5


class MySQLJobStore:
    name = "mysql"

    def __init__(
        self,
        config: MySQLConfig | str,
        *,
        pool_max_size: int,
        pool_recycle_seconds: float,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        init_timeout_seconds: float,
        **_unused: Any,
    ) -> None:
        self.config = parse_mysql_url(config) if isinstance(config, str) else config
        self.pool_max_size = pool_max_size
        self.pool_recycle_seconds = pool_recycle_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self.init_timeout_seconds = init_timeout_seconds
        self._pool = self._new_pool()

    def _new_pool(self) -> Pool:
        return Pool(self._connect, max_size=self.pool_max_size, recycle_seconds=self.pool_recycle_seconds)

    async def _connect(self):
        return await connect_to(self.config, self.connect_timeout_seconds, self.read_timeout_seconds)

    async def _with_cursor(self, work: Callable[[Any], Awaitable[T]], timeout: float | None = None) -> T:
        """Run `work(cursor)` on a pooled connection; retry once on a connection found dead, and a few
        times when InnoDB chose it as a deadlock's victim (the claim's row locks against an INSERT)."""
        lost_retried = False
        for _ in range(DEADLOCK_RETRIES):
            try:
                async with (
                    self._pool.connection() as connection,
                    asyncio.timeout(timeout or self.read_timeout_seconds),
                    connection.cursor() as cursor,
                ):
                    return await work(cursor)
            except my.IntegrityError:
                raise
            except (my.MySQLError, OSError, TimeoutError) as exc:
                if error_code(exc) == DEADLOCK:
                    continue
                if not lost_retried and connection_lost(exc):
                    lost_retried = True
                    log.info("MySQL connection lost (%s); retrying once on a fresh connection", exc)
                    continue
                raise MetadataUnavailable(
                    f"the MySQL database at {self.config.host}:{self.config.port} failed: "
                    f"{'no answer in time' if isinstance(exc, TimeoutError) else exc}"
                ) from exc
        raise MetadataUnavailable("the MySQL database kept reporting deadlocks; try again")

    async def _execute(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[tuple], int]:
        async def work(cursor) -> tuple[list[tuple], int]:
            count = await cursor.execute(sql, params)
            return list(await cursor.fetchall()), count

        return await self._with_cursor(work)

    async def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return (await self._execute(sql, params))[0]

    async def _take(self, picks: list[str], change: str, params: dict[str, Any]) -> list[Job]:
        """In one transaction: lock rows with the `picks` (SKIP LOCKED) up to params' limit, apply
        `change` (an UPDATE ... WHERE id IN) to them, and read them back."""

        async def work(cursor) -> list[Job]:
            # READ COMMITTED: the locking reads take no gap locks, so submits (INSERTs) do not wait on,
            # or deadlock with, a claim in progress.
            await cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            await cursor.execute("START TRANSACTION")
            try:
                ids: list[int] = []
                for pick in picks:
                    if len(ids) >= params["limit"]:
                        break
                    await cursor.execute(pick, {**params, "limit": params["limit"] - len(ids)})
                    ids.extend(row[0] for row in await cursor.fetchall())
                if not ids:
                    await cursor.execute("COMMIT")
                    return []
                marks = {f"i{n}": value for n, value in enumerate(ids)}
                in_list = ", ".join(f"%({name})s" for name in marks)
                await cursor.execute(f"{change} ({in_list})", {**params, **marks})
                await cursor.execute(f"{BY_IDS} ({in_list})", marks)
                rows = await cursor.fetchall()
                await cursor.execute("COMMIT")
            except BaseException:
                cursor.connection.close()  # never hand back a connection inside a transaction
                raise
            return [q.row_to_job(row)[0] for row in rows]

        return await self._with_cursor(work)

    # -- the port -------------------------------------------------------------------------------

    async def init(self) -> None:
        async def work(cursor) -> None:
            await cursor.execute(TABLE_EXISTS)
            if (await cursor.fetchone())[0]:
                return  # asked first: CREATE ... IF NOT EXISTS on an existing table logs a server note
            for statement in SCHEMA:
                await cursor.execute(statement)

        await self._with_cursor(work, timeout=self.init_timeout_seconds)

    async def add(
        self, job: Job, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        params = q.insert_params(job, idempotency_key, request_hash)
        params["created_at"] = utc_naive(params["created_at"])
        try:
            await self._execute(q.INSERT, params)
        except my.IntegrityError as exc:
            if error_code(exc) == DUPLICATE_ENTRY and "uq_jobs_owner_key" in str(exc):
                raise IdempotencyConflict() from exc
            if error_code(exc) == DUPLICATE_ENTRY and await self.get(job.id) is not None:
                return  # a retry after a lost answer: the first INSERT was committed
            raise MetadataUnavailable(f"the job could not be recorded: {exc}") from exc

    async def get(self, job_id: UUID) -> Job | None:
        rows = await self._rows(q.GET, {"job_id": str(job_id)})
        return q.row_to_job(rows[0])[0] if rows else None

    async def get_by_idempotency_key(self, owner: str | None, key: str) -> StoredJob | None:
        rows = await self._rows(q.GET_BY_KEY, {"owner": q.owner_value(owner), "key": key})
        if not rows:
            return None
        job, _, request_hash = q.row_to_job(rows[0])
        return StoredJob(job, request_hash or "")

    async def release_idempotency_key(self, owner: str | None, key: str, older_than: datetime) -> None:
        params = {"owner": q.owner_value(owner), "key": key, "older_than": utc_naive(older_than)}
        await self._execute(q.RELEASE_KEY, params)

    async def list_page(
        self, owner: str | None, status: JobStatus | None, limit: int, after: PagePosition | None = None
    ) -> JobPage:
        after = after or q.FIRST_POSITION
        params = {
            "owner": q.owner_value(owner),
            "status": status.value if status else None,
            "limit": limit + 1,
            "created_at": utc_naive(after.created_at),
            "id": after.id,
        }
        rows = await self._rows(q.LIST[(owner is not None, status is not None)], params)
        return q.page_from_rows(rows, limit)

    async def claim(
        self, worker: str, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[Job]:
        params = {
            "worker": worker,
            "now": utc_naive(now),
            "lease_until": utc_naive(lease_until),
            "limit": limit,
            "max_attempts": max_attempts,
        }
        return await self._take([CLAIMABLE_QUEUED, CLAIMABLE_EXPIRED], CLAIM, params)

    async def fail_abandoned(self, now: datetime, max_attempts: int, error: JobError) -> list[Job]:
        params = {
            "now": utc_naive(now),
            "max_attempts": max_attempts,
            "limit": 100,
            "error_code": error.code,
            "error_detail": error.detail,
        }
        return await self._take([ABANDONED], ABANDON, params)

    async def renew(self, worker: str, lease_until: datetime, job_ids: Iterable[UUID]) -> set[UUID]:
        mine: set[UUID] = set()
        for chunk in chunks([str(j) for j in job_ids]):
            ids = {f"j{i}": j for i, j in enumerate(chunk)}
            marks = ", ".join(f"%({name})s" for name in ids)
            params = {"worker": worker, "lease_until": utc_naive(lease_until), **ids}
            await self._execute(f"{RENEW} ({marks})", params)
            mine.update(UUID(row[0]) for row in await self._rows(f"{MINE} ({marks})", params))
        return mine

    async def is_running(self, job_id: UUID, worker: str) -> bool:
        return bool(await self._rows(q.IS_RUNNING, {"job_id": str(job_id), "worker": worker}))

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
        params["finished_at"] = utc_naive(finished_at)
        _, changed = await self._execute(q.FINISH, params)
        if not changed:
            return None
        return await self.get(job_id)

    async def cancel(self, job_id: UUID, finished_at: datetime) -> Job | None:
        params = {"job_id": str(job_id), "finished_at": utc_naive(finished_at)}
        _, changed = await self._execute(q.CANCEL, params)
        if not changed:
            return None
        return await self.get(job_id)

    async def release(self, job_id: UUID, worker: str) -> None:
        await self._execute(q.RELEASE, {"job_id": str(job_id), "worker": worker})

    async def unnotified(self, finished_before: datetime, limit: int) -> list[Job]:
        params = {"finished_before": utc_naive(finished_before), "limit": limit}
        return [q.row_to_job(row)[0] for row in await self._rows(q.UNNOTIFIED, params)]

    async def mark_notified(self, job_id: UUID) -> None:
        await self._execute(q.MARK_NOTIFIED, {"job_id": str(job_id)})

    async def ping(self) -> None:
        await self._execute("SELECT 1")

    async def close(self) -> None:
        pool, self._pool = self._pool, self._new_pool()
        await pool.close()

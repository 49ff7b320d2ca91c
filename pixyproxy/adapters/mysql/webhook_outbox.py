"""The webhook outbox on MySQL 8 / MariaDB 10.6+: `webhook_deliveries` in the metadata database.

* A claim is a short transaction: SELECT the due ids ... FOR UPDATE SKIP LOCKED, lease them, read them
  back, COMMIT. Replicas claiming at once each skip the rows another has locked, so none waits on
  another and no delivery is leased twice.
* Its own small pool (pool.py) to the server the image repository uses; the same session settings.
* The table is created at start if missing (CREATE TABLE IF NOT EXISTS: safe to run again).
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from pymysql import err as my

from pixyproxy.adapters.mysql.config import MySQLConfig, parse_mysql_url
from pixyproxy.adapters.mysql.pool import Pool, connect_to, utc_naive
from pixyproxy.adapters.webhook_rows import (
    DUE_IDS,
    GET,
    GET_FOR_JOB,
    INSERT_LIST,
    INSERT_VALUES,
    LEASE_SET,
    RECORD,
    RELEASE,
    SELECT,
    delivery_params,
    row_to_delivery,
)
from pixyproxy.domain.errors import MetadataUnavailable
from pixyproxy.domain.webhooks import WebhookDelivery

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id BIGINT NOT NULL AUTO_INCREMENT,
    delivery_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    job_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    url TEXT NOT NULL,
    event_type VARCHAR(64) NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    next_attempt_at DATETIME(6) NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INT NOT NULL,
    last_status_code INT NULL,
    last_error TEXT NULL,
    delivered_at DATETIME(6) NULL,
    lease_owner VARCHAR(128) NULL,
    lease_until DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_webhook_deliveries_delivery_id (delivery_id),
    UNIQUE KEY uq_webhook_deliveries_job_id (job_id),
    KEY ix_webhook_deliveries_due (status, next_attempt_at),
    KEY ix_webhook_deliveries_lease_owner (lease_owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""
TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = 'webhook_deliveries'"
)
# A job announces its end at least once: a second insert for the same job changes nothing (and, unlike
# INSERT IGNORE, raises no warning and hides no other error).
INSERT = (
    f"INSERT INTO webhook_deliveries ({INSERT_LIST}) VALUES ({INSERT_VALUES}) "  # noqa: S608
    "ON DUPLICATE KEY UPDATE id = id"
)
DUE_IDS = f"{DUE_IDS} FOR UPDATE SKIP LOCKED"
# Followed by one %(iN)s marker per claimed id.
LEASE = f"UPDATE webhook_deliveries {LEASE_SET} WHERE id IN"
# Followed by the same markers and CLAIMED_ORDER.
CLAIMED = f"{SELECT} WHERE id IN"
CLAIMED_ORDER = "ORDER BY next_attempt_at, id"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


class MySQLWebhookOutbox:
    name = "mysql"

    def __init__(
        self,
        config: MySQLConfig | str,
        *,
        pool_max_size: int,
        pool_recycle_seconds: float,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
    ) -> None:
        self.config = parse_mysql_url(config) if isinstance(config, str) else config
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self._pool = Pool(self._connect, max_size=pool_max_size, recycle_seconds=pool_recycle_seconds)

    async def _connect(self):
        return await connect_to(self.config, self.connect_timeout_seconds, self.read_timeout_seconds)

    def _unavailable(self, exc: BaseException) -> MetadataUnavailable:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else exc
        return MetadataUnavailable(
            f"the MySQL database at {self.config.host}:{self.config.port} failed: {reason}"
        )

    async def _execute(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[tuple], int]:
        try:
            async with (
                self._pool.connection() as connection,
                asyncio.timeout(self.read_timeout_seconds),
                connection.cursor() as cursor,
            ):
                changed = await cursor.execute(sql, params)
                return list(await cursor.fetchall()), changed
        except (my.MySQLError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    async def init(self) -> None:
        rows, _ = await self._execute(TABLE_EXISTS)
        if not rows[0][0]:  # asked first: CREATE ... IF NOT EXISTS on an existing table logs a note
            await self._execute(CREATE_TABLE)

    async def add(
        self, delivery: WebhookDelivery, lease_owner: str | None = None, lease_until: datetime | None = None
    ) -> bool:
        params = delivery_params(delivery, utc_naive)
        params.update(lease_owner=lease_owner, lease_until=utc_naive(lease_until) if lease_until else None)
        _, changed = await self._execute(INSERT, params)
        return changed == 1

    async def claim_due(
        self, owner: str, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        params: dict[str, Any] = {
            "owner": owner,
            "now": utc_naive(now),
            "lease_until": utc_naive(lease_until),
            "limit": limit,
        }
        try:
            async with (
                self._pool.connection() as connection,
                asyncio.timeout(self.read_timeout_seconds),
            ):
                await connection.begin()
                try:
                    async with connection.cursor() as cursor:
                        await cursor.execute(DUE_IDS, params)
                        ids = [row[0] for row in await cursor.fetchall()]
                        rows: list[tuple] = []
                        if ids:
                            marks = ", ".join(f"%(i{n})s" for n in range(len(ids)))
                            params.update({f"i{n}": value for n, value in enumerate(ids)})
                            await cursor.execute(f"{LEASE} ({marks})", params)
                            await cursor.execute(f"{CLAIMED} ({marks}) {CLAIMED_ORDER}", params)
                            rows = list(await cursor.fetchall())
                    await connection.commit()
                except BaseException:
                    await asyncio.shield(connection.rollback())
                    raise
        except (my.MySQLError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return [row_to_delivery(row, _aware) for row in rows]

    async def record_attempt(self, owner: str, delivery: WebhookDelivery) -> bool:
        params = delivery_params(delivery, utc_naive)
        params["owner"] = owner
        _, changed = await self._execute(RECORD, params)
        return changed == 1

    async def release(self, owner: str) -> None:
        await self._execute(RELEASE, {"owner": owner})

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        rows, _ = await self._execute(GET, {"delivery_id": delivery_id})
        return row_to_delivery(rows[0], _aware) if rows else None

    async def get_for_job(self, job_id: str) -> WebhookDelivery | None:
        rows, _ = await self._execute(GET_FOR_JOB, {"job_id": job_id})
        return row_to_delivery(rows[0], _aware) if rows else None

    async def ping(self) -> None:
        await self._execute("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()

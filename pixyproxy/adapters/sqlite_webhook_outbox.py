"""The webhook outbox on SQLite (the embedded default): `webhook_deliveries` in the metadata file.

A claim is one UPDATE ... RETURNING, run under SQLite's write lock: two processes on one file never
lease the same delivery at once.
"""

from datetime import datetime

from pixyproxy.adapters.sqlite_file import SQLiteFile, stamp
from pixyproxy.adapters.webhook_rows import (
    COLUMN_LIST,
    DUE_IDS,
    GET,
    GET_FOR_JOB,
    INSERT_LIST,
    INSERT_VALUES,
    LEASE_SET,
    RECORD,
    RELEASE,
    delivery_params,
    row_to_delivery,
    sqlite_style,
)
from pixyproxy.domain.webhooks import WebhookDelivery

# Each step is safe to run again; they run at every start, in order.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL UNIQUE,
        job_id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_status_code INTEGER,
        last_error TEXT,
        delivered_at TEXT,
        lease_owner TEXT,
        lease_until TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_lease_owner ON webhook_deliveries (lease_owner)",
)

SQLITE_GET = sqlite_style(GET)
SQLITE_GET_FOR_JOB = sqlite_style(GET_FOR_JOB)
# A job announces its end at least once: a second insert for the same job changes nothing.
INSERT = sqlite_style(
    f"INSERT INTO webhook_deliveries ({INSERT_LIST}) VALUES ({INSERT_VALUES}) "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
CLAIM = sqlite_style(f"UPDATE webhook_deliveries {LEASE_SET} WHERE id IN ({DUE_IDS}) RETURNING {COLUMN_LIST}")
SQLITE_RECORD = sqlite_style(RECORD)
SQLITE_RELEASE = sqlite_style(RELEASE)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class SQLiteWebhookOutbox(SQLiteFile):
    async def init(self) -> None:
        for statement in SCHEMA:
            self._run_counted(statement)

    async def add(
        self, delivery: WebhookDelivery, lease_owner: str | None = None, lease_until: datetime | None = None
    ) -> bool:
        params = delivery_params(delivery, stamp)
        params.update(lease_owner=lease_owner, lease_until=stamp(lease_until) if lease_until else None)
        _, count = self._run_counted(INSERT, params)
        return count == 1

    async def claim_due(
        self, owner: str, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        params = {"owner": owner, "now": stamp(now), "lease_until": stamp(lease_until), "limit": limit}
        rows, _ = self._run_counted(CLAIM, params)
        deliveries = [row_to_delivery(row, _parse) for row in rows]
        return sorted(deliveries, key=lambda d: d.next_attempt_at)

    async def record_attempt(self, owner: str, delivery: WebhookDelivery) -> bool:
        params = delivery_params(delivery, stamp)
        params["owner"] = owner
        _, count = self._run_counted(SQLITE_RECORD, params)
        return count == 1

    async def release(self, owner: str) -> None:
        self._run_counted(SQLITE_RELEASE, {"owner": owner})

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        rows, _ = self._run_counted(SQLITE_GET, {"delivery_id": delivery_id})
        return row_to_delivery(rows[0], _parse) if rows else None

    async def get_for_job(self, job_id: str) -> WebhookDelivery | None:
        rows, _ = self._run_counted(SQLITE_GET_FOR_JOB, {"job_id": job_id})
        return row_to_delivery(rows[0], _parse) if rows else None

"""The WebhookOutbox port on the SQL layer, for SQLite and MySQL alike: `webhook_deliveries`
(statements and row mapping in webhook_rows.py).

A claim is one write transaction: pick the due ids (MySQL: FOR UPDATE SKIP LOCKED; SQLite: the write
lock), lease them, read them back, so no delivery is leased to two claimants at once.
"""

from datetime import datetime
from typing import Any

from pixyproxy.adapters.sql.database import Database, Tx
from pixyproxy.adapters.sql.dialect import KEEP_EXISTING, LOCK_PICKED
from pixyproxy.adapters.sql.webhook_rows import (
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
from pixyproxy.domain.webhooks import WebhookDelivery

LEASE = f"UPDATE webhook_deliveries {LEASE_SET} WHERE id IN"  # followed by one :iN marker per id
CLAIMED = f"{SELECT} WHERE id IN"  # followed by the same markers and CLAIMED_ORDER
CLAIMED_ORDER = "ORDER BY next_attempt_at, id"


class SQLWebhookOutbox:
    def __init__(self, database: Database) -> None:
        self.db = database
        self.name = database.name
        # A job announces its end at least once: a second insert for the same job changes nothing.
        self._insert = (
            f"INSERT INTO webhook_deliveries ({INSERT_LIST}) "  # noqa: S608
            f"VALUES ({INSERT_VALUES}){KEEP_EXISTING[self.name]}"
        )
        self._due = DUE_IDS + LOCK_PICKED[self.name]

    async def init(self) -> None:
        await self.db.init()

    def _stamp(self, value: datetime) -> Any:
        return self.db.dialect.stamp(value)

    async def add(
        self, delivery: WebhookDelivery, lease_owner: str | None = None, lease_until: datetime | None = None
    ) -> bool:
        params = delivery_params(delivery, self._stamp)
        params.update(lease_owner=lease_owner, lease_until=self._stamp(lease_until) if lease_until else None)
        return await self.db.execute(self._insert, params) == 1

    async def claim_due(
        self, owner: str, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        params: dict[str, Any] = {
            "owner": owner,
            "now": self._stamp(now),
            "lease_until": self._stamp(lease_until),
            "limit": limit,
        }

        async def work(tx: Tx) -> list:
            ids = [row[0] for row in await tx.rows(self._due, params)]
            if not ids:
                return []
            marks = {f"i{n}": value for n, value in enumerate(ids)}
            in_list = ", ".join(f":{name}" for name in marks)
            await tx.execute(f"{LEASE} ({in_list})", {**params, **marks})
            return list(await tx.rows(f"{CLAIMED} ({in_list}) {CLAIMED_ORDER}", marks))

        rows = await self.db.run(work)
        return [row_to_delivery(row, self.db.dialect.parse) for row in rows]

    async def record_attempt(self, owner: str, delivery: WebhookDelivery) -> bool:
        params = delivery_params(delivery, self._stamp)
        params["owner"] = owner
        return await self.db.execute(RECORD, params) == 1

    async def release(self, owner: str) -> None:
        await self.db.execute(RELEASE, {"owner": owner}, idempotent=True)

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        rows = await self.db.rows(GET, {"delivery_id": delivery_id}, by_key=True)
        return row_to_delivery(rows[0], self.db.dialect.parse) if rows else None

    async def get_for_job(self, job_id: str) -> WebhookDelivery | None:
        rows = await self.db.rows(GET_FOR_JOB, {"job_id": job_id}, by_key=True)
        return row_to_delivery(rows[0], self.db.dialect.parse) if rows else None

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

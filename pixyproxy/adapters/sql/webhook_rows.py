"""What the SQL webhook outboxes (SQLite, MySQL) share about `webhook_deliveries`: the columns, the row
mapping and the statements, written once with :name parameters.

A delivery waits as a `pending` row due at next_attempt_at; a dispatcher leases it (lease_owner,
lease_until), makes one attempt, then writes the outcome and clears the lease in one UPDATE that only
matches while it still holds the lease. Times are the application's (UTC).
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pixyproxy.domain.webhooks import WebhookDelivery

# Every SELECT returns these, in this order (the WebhookDelivery fields, `id` being delivery_id).
COLUMNS = (
    "delivery_id",
    "job_id",
    "url",
    "event_type",
    "payload",
    "created_at",
    "next_attempt_at",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "delivered_at",
    "tenant",
)
COLUMN_LIST = ", ".join(COLUMNS)
TIMES = ("created_at", "next_attempt_at", "delivered_at")

SELECT = f"SELECT {COLUMN_LIST} FROM webhook_deliveries"  # noqa: S608
GET = f"{SELECT} WHERE delivery_id = :delivery_id"
GET_FOR_JOB = f"{SELECT} WHERE job_id = :job_id"
# An insert may lease the delivery to its own process at once (its first attempt goes out right away).
INSERT_COLUMNS = (*COLUMNS, "lease_owner", "lease_until")
INSERT_LIST = ", ".join(INSERT_COLUMNS)
INSERT_VALUES = ", ".join(f":{c}" for c in INSERT_COLUMNS)
DUE = "status = 'pending' AND next_attempt_at <= :now AND (lease_until IS NULL OR lease_until < :now)"
DUE_IDS = f"SELECT id FROM webhook_deliveries WHERE {DUE} ORDER BY next_attempt_at, id LIMIT :limit"  # noqa: S608
LEASE_SET = "SET lease_owner = :owner, lease_until = :lease_until"
RECORD = (
    "UPDATE webhook_deliveries SET status = :status, attempts = :attempts, "
    "next_attempt_at = :next_attempt_at, last_status_code = :last_status_code, "
    "last_error = :last_error, delivered_at = :delivered_at, lease_owner = NULL, lease_until = NULL "
    "WHERE delivery_id = :delivery_id AND lease_owner = :owner"
)
RELEASE = "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = :owner"


def delivery_params(delivery: WebhookDelivery, stamp: Callable[[datetime], Any]) -> dict[str, Any]:
    """The COLUMNS values of `delivery`, its times turned into the store's form by `stamp`."""
    params: dict[str, Any] = {
        "delivery_id": delivery.id,
        "job_id": delivery.job_id,
        "url": delivery.url,
        "event_type": delivery.event_type,
        "payload": delivery.payload,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at,
        "tenant": delivery.tenant,
    }
    for name in TIMES:
        if params[name] is not None:
            params[name] = stamp(params[name])
    return params


def row_to_delivery(row: Sequence[Any], parse: Callable[[Any], datetime]) -> WebhookDelivery:
    values = dict(zip(COLUMNS, row, strict=True))
    for name in TIMES:
        if values[name] is not None:
            values[name] = parse(values[name])
    values["id"] = values.pop("delivery_id")
    return WebhookDelivery(**values)

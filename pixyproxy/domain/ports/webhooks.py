"""Ports of webhook delivery: the signed HTTP call and the outbox (DNS for the URL checks: resolver.py)."""

from datetime import datetime
from typing import Protocol

from pixyproxy.domain.ports.resolver import HostResolver
from pixyproxy.domain.webhooks import SendResult, WebhookDelivery, WebhookTarget

__all__ = ["HostResolver", "WebhookOutbox", "WebhookSender"]


class WebhookSender(Protocol):
    """Sends one signed webhook attempt."""

    async def init(self) -> None: ...

    async def send(self, target: WebhookTarget, message_id: str, payload: str) -> SendResult:
        """POST `payload` to `target.url`, signed (webhook-id `message_id`, webhook-timestamp now),
        connecting only to `target.addresses` (the ones checked) and following no redirect. A network
        failure or timeout is returned as SendResult(error=...), not raised."""
        ...

    async def close(self) -> None: ...


class WebhookOutbox(Protocol):
    """The deliveries still to make and made (the `webhook_deliveries` table), shared by every
    process on the metadata store. Every method raises MetadataUnavailable when it cannot be reached."""

    name: str

    async def init(self) -> None:
        """Create the table if missing; idempotent, never drops data."""
        ...

    async def add(
        self, delivery: WebhookDelivery, lease_owner: str | None = None, lease_until: datetime | None = None
    ) -> bool:
        """Store a new delivery, leased to `lease_owner` until `lease_until` when given (claimed as it
        is stored); False (and nothing changed) when that job already has one."""
        ...

    async def claim_due(
        self, owner: str, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        """Lease up to `limit` pending deliveries due by `now` whose lease is free or expired, oldest
        due first: none is handed to two claimants whose leases overlap."""
        ...

    async def record_attempt(self, owner: str, delivery: WebhookDelivery) -> bool:
        """Write an attempt's outcome (status, attempts, next_attempt_at, last_*, delivered_at) and let
        go of the lease, only while `owner` still holds it; False when it does not (nothing written)."""
        ...

    async def release(self, owner: str) -> None:
        """Let go of every lease `owner` holds (a clean shutdown), leaving the deliveries due."""
        ...

    async def get(self, delivery_id: str) -> WebhookDelivery | None: ...

    async def get_for_job(self, job_id: str) -> WebhookDelivery | None: ...

    async def close(self) -> None: ...

"""The webhook delivery worker: one per process, taking due deliveries from the outbox.

* When a job ends its delivery is written to the outbox (the metadata store) and this process's worker
  is woken: the first attempt goes out at once. Retries wait in the store, not in memory, so a restart
  (or another replica, once the lease expires) picks them up.
* Each claimed delivery is leased to this process; the attempt, DNS included, runs under a deadline
  shorter than the lease, so a lease never runs out under a live attempt.
* The URL is checked again at every attempt (a name may resolve elsewhere since submit), and the
  sender connects only to the addresses checked.
* Slots are shared fairly (webhook_fairness.py): a claimed delivery whose tenant or origin holds its full
  share is put back, due a little later, so receivers that never answer hold up only their own.
"""

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pixyproxy.domain.claim_loop import ClaimLoop
from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import InvalidWebhookUrl
from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.domain.ports.resolver import HostResolver
from pixyproxy.domain.ports.webhooks import WebhookOutbox, WebhookSender
from pixyproxy.domain.webhook_fairness import FairShares, Share
from pixyproxy.domain.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    RetryPolicy,
    SendResult,
    WebhookDelivery,
    check_addresses,
    describe_result,
    loggable_url,
    new_delivery,
    should_retry,
    validate_webhook_url,
)

if TYPE_CHECKING:
    from pixyproxy.domain.jobs_models import Job

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 64  # attempts wait on receivers, not on CPU: a few slow ones must not hold up the rest
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_POLL_SECONDS = 2.0
TENANTS_REMEMBERED = 100_000  # delivery id -> tenant, for deliveries announced here and not yet ended


def process_owner() -> str:
    """A name for this process's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WebhookDispatcher:
    def __init__(
        self,
        outbox: WebhookOutbox,
        sender: WebhookSender,
        resolver: HostResolver,
        *,
        retry: RetryPolicy,
        allow_private: bool,
        timeout_seconds: float,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        owner: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        rand: Callable[[], float] = random.random,
        metrics: "MetricsRecorder | None" = None,
    ) -> None:
        if lease_seconds <= timeout_seconds:
            raise ValueError("the webhook lease must outlast an attempt's timeout")
        self.outbox = outbox
        self.sender = sender
        self.resolver = resolver
        self.retry = retry
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.owner = owner or process_owner()
        self.clock = clock
        self.rand = rand
        self.metrics = metrics
        self._claims = ClaimLoop(self._claim_and_start, self._idle_seconds, "webhook deliveries")
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[WebhookDelivery]] = set()
        self._soonest: datetime | None = None  # the earliest retry this process scheduled
        self.shares = FairShares.of(concurrency)
        self._shares_held: dict[asyncio.Task[WebhookDelivery], Share] = {}
        self._tenants: OrderedDict[str, str] = OrderedDict()
        # A delivery over its share waits this long before it is claimed again: long enough not to
        # spin on the store, short enough that a busy tenant's own deliveries are not held up for long.
        self.defer_seconds = max(1.0, timeout_seconds / 2)

    # -- lifecycle (a container Resource) ------------------------------------------------------

    async def init(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._claims.run(), name="webhook-dispatcher")

    async def close(self) -> None:
        """Stop claiming, cancel attempts under way and give their leases back, so a restart or
        another replica sends them again (same webhook-id) without waiting for the leases to run out."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        in_flight = list(self._in_flight)
        for attempt in in_flight:
            attempt.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        try:
            await self.outbox.release(self.owner)
        except Exception as exc:
            log.warning("webhook leases not released at shutdown (they expire by themselves): %s", exc)

    def wake(self) -> None:
        """Look for due deliveries now (a job just ended) instead of at the next poll."""
        self._claims.wake()

    # -- what the jobs core calls --------------------------------------------------------------

    async def announce(
        self,
        job_id: str,
        webhook_url: str,
        status: str,
        job: Mapping[str, Any] | str,
        tenant: str | None = None,
    ) -> WebhookDelivery:
        """A job ended: store its delivery (unless its store already did, in the transaction that
        ended it) and send it now. Answers the stored delivery. `tenant`: the job's key name."""
        now = self.clock()
        delivery = replace(new_delivery(job_id, webhook_url, status, job, now), tenant=tenant)
        # With a slot free within its shares (and the worker running), the row is stored leased to this
        # process and its first attempt starts now: no wait for the worker to wake and claim it.
        share = None
        if self._loop_task is not None and len(self._in_flight) < self.concurrency:
            share = self.shares.take(tenant, webhook_url)
        lease = (self.owner, now + timedelta(seconds=self.lease_seconds)) if share else (None, None)
        if not await self.outbox.add(delivery, *lease):
            if share is not None:
                self.shares.give_back(share)
            self.wake()
            stored = await self.outbox.get_for_job(str(job_id))
            if stored is not None:
                self._remember_tenant(stored.id, tenant)
            return stored or delivery
        self._remember_tenant(delivery.id, tenant)
        if share is not None:
            self._start(delivery, share)
        else:
            self.wake()
        return delivery

    def _remember_tenant(self, delivery_id: str, tenant: str | None) -> None:
        """The store keeps no tenant: remembered here for the deliveries this process announced."""
        if tenant is None:
            return
        self._tenants[delivery_id] = tenant
        if len(self._tenants) > TENANTS_REMEMBERED:
            self._tenants.popitem(last=False)

    def _tenant_of(self, delivery: WebhookDelivery) -> str | None:
        return delivery.tenant or self._tenants.get(delivery.id)

    # -- the loop ------------------------------------------------------------------------------

    def _idle_seconds(self) -> float:
        wait = self.poll_seconds
        if self._soonest is not None:
            wait = min(wait, max((self._soonest - self.clock()).total_seconds(), 0.0))
        return wait

    async def _claim_and_start(self) -> bool:
        """Claim what fits in the free slots; True when it filled them (more may be due)."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return False
        now = self.clock()
        if self._soonest is not None and self._soonest <= now:
            self._soonest = None
        claimed = await self.outbox.claim_due(
            self.owner, now, free, now + timedelta(seconds=self.lease_seconds)
        )
        over_share = []
        for delivery in claimed:
            share = self.shares.take(self._tenant_of(delivery), delivery.url)
            if share is None:
                over_share.append(delivery)
            else:
                self._start(delivery, share)
        await self._put_back(over_share, now)
        return bool(claimed) and len(claimed) == free

    async def _put_back(self, deliveries: list[WebhookDelivery], now: datetime) -> None:
        """Deliveries over their share: unleased and due again a little later (no attempt counted)."""
        if not deliveries:
            return
        due = now + timedelta(seconds=self.defer_seconds)
        for delivery in deliveries:
            try:
                await self.outbox.record_attempt(self.owner, replace(delivery, next_attempt_at=due))
            except Exception as exc:
                log.warning("webhook %s not put back (%s); its lease will expire", delivery.id, exc)
        if self._soonest is None or due < self._soonest:
            self._soonest = due

    def _start(self, delivery: WebhookDelivery, share: Share) -> None:
        task = asyncio.create_task(self._attempt_and_record(delivery), name=f"webhook-{delivery.id}")
        self._in_flight.add(task)
        self._shares_held[task] = share
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[WebhookDelivery]) -> None:
        self._in_flight.discard(task)
        share = self._shares_held.pop(task, None)
        if share is not None:
            self.shares.give_back(share)
        self._claims.wake()  # a slot is free

    async def deliver_due(self) -> int:
        """One pass without the loop: claim what is due, attempt each, wait for them; the number
        attempted. For tests and tools."""
        now = self.clock()
        claimed = await self.outbox.claim_due(
            self.owner, now, self.concurrency, now + timedelta(seconds=self.lease_seconds)
        )
        await asyncio.gather(*(self._attempt_and_record(d) for d in claimed))
        return len(claimed)

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempt_and_record(self, delivery: WebhookDelivery) -> WebhookDelivery:
        try:
            outcome = await self.attempt(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Our own bug: leave the delivery to its lease's expiry rather than lose it.
            log.exception("webhook attempt for job %s failed unexpectedly", delivery.job_id)
            return delivery
        try:
            if not await self.outbox.record_attempt(self.owner, outcome):
                log.info("webhook %s: lease lost before its outcome was written", delivery.id)
        except Exception as exc:
            log.warning("webhook %s: outcome not written (%s); it will be attempted again", delivery.id, exc)
        if outcome.status == PENDING and (self._soonest is None or outcome.next_attempt_at < self._soonest):
            self._soonest = outcome.next_attempt_at
        if outcome.status != PENDING:
            self._tenants.pop(outcome.id, None)
        return outcome

    async def attempt(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Make one attempt and answer the delivery as it stands after it (not yet written)."""
        started = time.perf_counter()
        outcome = await self._attempt(delivery)
        if self.metrics is not None:
            kind = {DELIVERED: "delivered", PENDING: "retrying"}.get(outcome.status, "failed")
            self.metrics.observe_webhook(kind, time.perf_counter() - started)
        return outcome

    async def _attempt(self, delivery: WebhookDelivery) -> WebhookDelivery:
        attempts = delivery.attempts + 1
        result, refusal = await self._send(delivery)
        now = self.clock()
        if refusal is not None:
            log.warning("webhook for job %s not sent: %s", delivery.job_id, refusal)
            return replace(
                delivery, status=FAILED, attempts=attempts, last_error=refusal, last_status_code=None
            )
        verdict = should_retry(result)
        # Every outcome below records the attempt and the receiver's status.
        attempted = replace(delivery, attempts=attempts, last_status_code=result.status_code)
        if verdict is None:
            return replace(attempted, status=DELIVERED, delivered_at=now, last_error=None)
        error = describe_result(result)
        if not verdict or attempts >= self.retry.max_attempts:
            why = "not retried" if not verdict else f"gave up after {attempts} attempts"
            where = loggable_url(delivery.url)
            said = error.replace(delivery.url, where)
            log.warning("webhook for job %s to %s failed (%s): %s", delivery.job_id, where, why, said)
            return replace(attempted, status=FAILED, last_error=f"{error} ({why})")
        wait = self.retry.delay(attempts, result.retry_after, self.rand())
        said = error.replace(delivery.url, loggable_url(delivery.url))
        log.info("webhook for job %s: %s; attempt %d in %.1f s", delivery.job_id, said, attempts + 1, wait)
        return replace(
            attempted, status=PENDING, next_attempt_at=now + timedelta(seconds=wait), last_error=error
        )

    async def _send(self, delivery: WebhookDelivery) -> tuple[SendResult, str | None]:
        """(result, None), or (empty result, why it was refused) for a URL that may not be called."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                try:
                    target = validate_webhook_url(delivery.url, self.allow_private)
                    if not target.addresses:
                        found = await self.resolver.resolve(target.host, target.port)
                        if not found:  # DNS may come back: retried like a refused connection
                            return SendResult(error=f"{target.host} does not resolve"), None
                        target = replace(
                            target, addresses=check_addresses(target.host, found, self.allow_private)
                        )
                except InvalidWebhookUrl as exc:
                    return SendResult(), exc.message
                return await self.sender.send(target, delivery.id, delivery.payload), None
        except TimeoutError:
            return SendResult(error=f"no answer within {self.timeout_seconds:g} s"), None


class WebhookNotifier:
    """The jobs core's JobFinished hook: a job that ended with a webhook_url gets its delivery stored
    and sent. Idempotent per job (the outbox keeps one delivery per job id), as the hook must be."""

    def __init__(self, dispatcher: WebhookDispatcher | None) -> None:
        self.dispatcher = dispatcher

    async def job_finished(self, job: "Job") -> None:
        url = job.request.webhook_url
        if not url:
            return
        if self.dispatcher is None:
            log.warning("job %s has a webhook_url but PIXYPROXY_WEBHOOK_SECRET is not set: not sent", job.id)
            return
        # The job exactly as GET /image/jobs/{id} answers it.
        await self.dispatcher.announce(
            str(job.id), url, job.status.value, job.model_dump_json(), tenant=job.owner
        )

"""Metering: every call that costs money goes through ProviderCalls. The budget decides before it
(BudgetExceeded, the provider never called), and what the provider reported is recorded after it (a usage
row, the metrics), whether or not its image is then stored."""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import BudgetExceeded, ImageException
from pixyproxy.domain.models import Caller, GeneratedImage
from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.tenancy import owner_of
from pixyproxy.domain.usage import (
    DEFAULT_PRICES,
    Price,
    Reservation,
    UsageEntry,
    estimate_cost,
    tokens_of,
)
from pixyproxy.domain.usecases.budgets import Budgets

log = logging.getLogger(__name__)
T = TypeVar("T")


def safety_identifier_for(caller: str | None) -> str | None:
    """What the provider is told of who asked: a stable hash of the caller (itself a key digest prefix),
    so abuse can be traced to a key without the provider ever seeing the key."""
    if not caller:
        return None
    return "pixyproxy-" + hashlib.sha256(f"pixyproxy-safety:{caller}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Paid:
    """A provider's image, paid for and recorded, not stored yet."""

    generated: GeneratedImage
    cost: float | None


class ProviderCalls:
    def __init__(
        self,
        repository: ImageRepository,
        *,
        budgets: Budgets | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
        metrics: MetricsRecorder | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = repository
        self.budgets = budgets
        self.prices = prices
        self.metrics = metrics
        self._clock = clock

    async def call(
        self, caller: Caller | None, operation: str, call: Callable[[], Awaitable[GeneratedImage]]
    ) -> Paid:
        generated, reservation = await self._paid_for(caller, call)
        return await self._record(caller, operation, generated, reservation)

    async def call_then(
        self,
        caller: Caller | None,
        operation: str,
        call: Callable[[], Awaitable[GeneratedImage]],
        then: Callable[[GeneratedImage], Awaitable[T]],
    ) -> tuple[Paid, T]:
        """call(), with `then` (the image's check and write) run on the image while its usage is
        recorded: the recording ends either way, and a failure of `then` is raised once it has."""
        generated, reservation = await self._paid_for(caller, call)
        paid, followed = await asyncio.gather(
            self._record(caller, operation, generated, reservation),
            then(generated),
            return_exceptions=True,
        )
        for outcome in (paid, followed):
            if isinstance(outcome, BaseException):
                raise outcome
        return cast(Paid, paid), cast(T, followed)

    async def _paid_for(
        self, caller: Caller | None, call: Callable[[], Awaitable[GeneratedImage]]
    ) -> tuple[GeneratedImage, Reservation | None]:
        """The provider's image within the caller's budget, and the budget's reservation for it."""
        reservation = None
        if self.budgets is not None:
            try:
                reservation = await self.budgets.reserve(caller)
            except BudgetExceeded:
                if self.metrics is not None and caller is not None:
                    self.metrics.add_budget_refusal(caller.name)
                raise
        try:
            return await call(), reservation
        except BaseException:
            if self.budgets is not None:
                await self.budgets.refund(reservation)
            raise

    async def _record(
        self,
        caller: Caller | None,
        operation: str,
        generated: GeneratedImage,
        reservation: Reservation | None,
    ) -> Paid:
        """What the provider reported: the budget settled, a usage row, the metrics."""
        spent_in, spent_out = tokens_of(generated.usage)
        cost = generated.cost_usd
        if cost is None:  # the catalogue gave none: the price table (PIXYPROXY_PRICES) decides
            cost = estimate_cost(generated.model, generated.usage, self.prices)
        entry = UsageEntry(
            self._clock(),
            owner_of(caller),
            generated.model,
            operation,
            1,
            spent_in,
            spent_out,
            cost,
            generated.provider,
        )
        try:
            if self.budgets is not None:
                await self.budgets.settle(reservation, spent_in + spent_out)
            await self.repository.record_usage(entry)
        except ImageException as exc:  # the image was paid for: store it; the log says what was lost
            log.warning("usage of a %s by %s not recorded: %s", operation, entry.owner or "-", exc.message)
        if self.metrics is not None:
            self.metrics.add_usage(entry.owner or "-", 1, spent_in, spent_out, cost or 0.0)
        return Paid(generated, cost)

"""Budgets: per-key daily limits decided before the provider is called, counted in a UsageCounter (in
memory per process, or in Redis shared by every replica). Days are UTC days."""

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import BudgetExceeded
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.counters import UsageCounter
from pixyproxy.domain.usage import Budget, Reservation, next_midnight

log = logging.getLogger(__name__)


class Budgets:
    """Per-key daily budgets: `reserve` before the provider call (images counted then, atomically, so
    concurrent requests cannot all slip under the limit), `settle` with the tokens it reported, `refund`
    when no image came of it. Tokens are known only afterwards: a key is refused once it has reached its
    token budget, so the last generation of a day may go past it."""

    def __init__(
        self,
        counter: "UsageCounter",
        default: Budget = Budget(),
        per_key: Mapping[str, Budget] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.counter = counter
        self.default = default
        self.per_key = dict(per_key or {})
        self.clock = clock

    def budget_for(self, caller: Caller | None) -> Budget:
        if caller is None:  # keys off: no one to hold to a budget
            return Budget()
        return self.per_key.get(caller.name, self.default)

    async def reserve(self, caller: Caller | None, images: int = 1) -> Reservation | None:
        budget = self.budget_for(caller)
        if caller is None or not budget.limited:
            return None
        now = self.clock()
        reset = next_midnight(now)
        day = now.astimezone(UTC).date().isoformat()
        # The counters outlive their day by an hour, then expire by themselves.
        expiry = int((reset - now).total_seconds()) + 3600
        if budget.tokens_per_day:
            used = await self.counter.get(f"tokens/{caller.name}/{day}")
            if used >= budget.tokens_per_day:
                raise self._exceeded("tokens", budget.tokens_per_day, now, reset)
        if budget.images_per_day:
            counted = await self.counter.incr(f"images/{caller.name}/{day}", images, expiry)
            if counted > budget.images_per_day:
                await self.counter.incr(f"images/{caller.name}/{day}", -images, expiry)
                raise self._exceeded("images", budget.images_per_day, now, reset)
        return Reservation(caller.name, day, images if budget.images_per_day else 0, expiry)

    async def settle(self, reservation: Reservation | None, tokens: int) -> None:
        if reservation is None or tokens <= 0:
            return
        if self.budget_for(Caller(reservation.name)).tokens_per_day:
            key = f"tokens/{reservation.name}/{reservation.day}"
            await self.counter.incr(key, tokens, reservation.expiry_seconds)

    async def refund(self, reservation: Reservation | None) -> None:
        """Give back the images of a generation that failed; a counter that cannot be reached now keeps
        them (the key loses an image of its day, nothing worse)."""
        if reservation is None or not reservation.images:
            return
        key = f"images/{reservation.name}/{reservation.day}"
        try:
            await self.counter.incr(key, -reservation.images, reservation.expiry_seconds)
        except Exception:
            log.warning(
                "could not give back %d image(s) of %s's budget", reservation.images, reservation.name
            )

    @staticmethod
    def _exceeded(measure: str, limit: int, now: datetime, reset: datetime) -> BudgetExceeded:
        return BudgetExceeded(
            f"this API key has used its daily budget of {limit} {measure}; it starts again at "
            f"{reset.isoformat().replace('+00:00', 'Z')}",
            reset_at=reset,
            retry_after=max(1.0, (reset - now).total_seconds()),
            measure=measure,
        )

"""Usage and budgets: what each generation cost (the provider's token counts and a price-table
estimate), per-key totals, and per-key daily limits decided before the provider is called.

Budgets count in a UsageCounter (ports/counters.py): per process in memory, or in Redis shared by
every replica. Days are UTC days; a budget starts again at 00:00 UTC.
"""

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import BudgetExceeded, InvalidImageRequest
from pixyproxy.domain.models import Caller

if TYPE_CHECKING:  # the ports import this module's models; a run-time import would go round in a circle
    from pixyproxy.ports.counters import UsageCounter

log = logging.getLogger(__name__)


class Price(BaseModel):
    """US dollars per million input tokens, per million output tokens, and per image."""

    input_per_million: float = Field(default=0.0, ge=0)
    output_per_million: float = Field(default=0.0, ge=0)
    per_image: float = Field(default=0.0, ge=0)


# Estimates from OpenAI's published image-token prices; override or extend with PIXYPROXY_PRICES.
# `*` prices any model not named (absent: such a model's cost is unknown, null).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-image-1": Price(input_per_million=5.0, output_per_million=40.0),
    "gpt-image-1-mini": Price(input_per_million=2.0, output_per_million=8.0),
    "gpt-image-2.6-sunburst": Price(input_per_million=5.0, output_per_million=40.0),
    "pixyproxy-offline": Price(),
}


def tokens_of(usage: Mapping[str, Any] | None) -> tuple[int, int]:
    """(input, output) tokens from a provider's usage report; 0 where it reported none."""
    if not usage:
        return 0, 0

    def number(*names: str) -> int:
        for name in names:
            value = usage.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return int(value)
        return 0

    spent_in = number("input_tokens", "prompt_tokens")
    spent_out = number("output_tokens", "completion_tokens")
    if not spent_out:
        spent_out = max(0, number("total_tokens") - spent_in)
    return spent_in, spent_out


def estimate_cost(
    model: str, usage: Mapping[str, Any] | None, prices: Mapping[str, Price], images: int = 1
) -> float | None:
    """The cost of one generation in US dollars under `prices`; None for a model without a price."""
    price = prices.get(model) or prices.get("*")
    if price is None:
        return None
    spent_in, spent_out = tokens_of(usage)
    cost = (
        spent_in * price.input_per_million / 1e6
        + spent_out * price.output_per_million / 1e6
        + images * price.per_image
    )
    return round(cost, 6)


@dataclass(frozen=True)
class UsageEntry:
    """One provider call as the usage table keeps it (whether or not its image was stored)."""

    created_at: datetime
    owner: str | None
    model: str
    operation: str  # "generate" or "edit"
    images: int
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float | None
    provider: str | None = None  # which provider made it (the catalogue's); None before there was one


class UsageCounts(BaseModel):
    images: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    estimated_cost_usd: float


class UsageTotal(UsageCounts):
    """One key's generations in a period (the repository's rows also say which model and provider)."""

    key: str | None = Field(description="The API key's name; null for images made with keys off.")
    model: str | None = Field(default=None, exclude=True)
    provider: str | None = Field(default=None, exclude=True)


class ModelUsage(UsageCounts):
    model: str
    provider: str | None = Field(description="Null for generations recorded before the catalogue.")


class ProviderUsage(UsageCounts):
    provider: str | None = Field(description="Null for generations recorded before the catalogue.")


class UsageReport(BaseModel):
    since: datetime
    until: datetime
    keys: list[UsageTotal]
    models: list[ModelUsage] = Field(default_factory=list, description="Totals by model and provider.")
    providers: list[ProviderUsage] = Field(default_factory=list, description="Totals by provider.")


def totals_by(rows: list[UsageTotal], kind: type[BaseModel], *fields: str) -> list[Any]:
    """The repository's rows (per key, model and provider) added up by `fields`, as `kind`."""
    summed: dict[tuple, list[float]] = {}
    for row in rows:
        t = summed.setdefault(tuple(getattr(row, f) for f in fields), [0, 0, 0, 0.0])
        t[0] += row.images
        t[1] += row.input_tokens
        t[2] += row.output_tokens
        t[3] += row.estimated_cost_usd

    def order(group: tuple) -> tuple:  # null (keys off, older rows) first, then by name
        return tuple((value is not None, value or "") for value in group)

    return [
        kind(
            **dict(zip(fields, group, strict=True)),
            images=int(t[0]),
            input_tokens=int(t[1]),
            output_tokens=int(t[2]),
            total_tokens=int(t[1] + t[2]),
            estimated_cost_usd=round(t[3], 6),
        )
        for group, t in sorted(summed.items(), key=lambda item: order(item[0]))
    ]


@dataclass(frozen=True)
class Budget:
    """A key's daily limits; 0 means no limit on that measure."""

    images_per_day: int = 0
    tokens_per_day: int = 0

    @property
    def limited(self) -> bool:
        return self.images_per_day > 0 or self.tokens_per_day > 0


@dataclass(frozen=True)
class Reservation:
    """Images counted against a key's budget before the provider is called."""

    name: str
    day: str
    images: int
    expiry_seconds: int


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


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


# RFC 3339 date-time with a zone, or a plain date (its 00:00 UTC).
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2}))?$"
_INSTANT = re.compile(INSTANT_PATTERN)


def parse_instant(name: str, value: str) -> datetime:
    """A client's `since`/`until`: InvalidImageRequest (422) naming the parameter unless it is an RFC 3339
    date-time with a zone or a date."""
    if not _INSTANT.match(value):
        raise InvalidImageRequest(f"query.{name}: a date (2026-11-24) or an RFC 3339 date-time with a zone")
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidImageRequest(f"query.{name}: not a real date ({exc})") from exc


def usage_period(since: str | None, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): by default from today's 00:00 UTC until now (and a moment past it)."""
    start = parse_instant("since", since) if since is not None else next_midnight(now) - timedelta(days=1)
    end = parse_instant("until", until) if until is not None else now + timedelta(seconds=1)
    if end <= start:
        raise InvalidImageRequest("query.until: must be after since")
    return start, end

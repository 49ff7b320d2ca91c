"""Usage and budgets: what each generation cost (the provider's token counts and a price-table
estimate), per-key totals, and per-key daily limits decided before the provider is called.

Budgets count in a UsageCounter (ports/counters.py): per process in memory, or in Redis shared by
every replica. Days are UTC days; a budget starts again at 00:00 UTC.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.instants import parse_instant

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
    summed: dict[tuple[str | None, ...], list[float]] = {}
    for row in rows:
        t = summed.setdefault(tuple(getattr(row, f) for f in fields), [0, 0, 0, 0.0])
        t[0] += row.images
        t[1] += row.input_tokens
        t[2] += row.output_tokens
        t[3] += row.estimated_cost_usd

    def order(
        group: tuple[str | None, ...],
    ) -> tuple[tuple[bool, str], ...]:  # null (keys off, older rows) first, then by name
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


def usage_period(since: str | None, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): by default from today's 00:00 UTC until now (and a moment past it)."""
    start = (
        parse_instant("since", since, dates=True)
        if since is not None
        else next_midnight(now) - timedelta(days=1)
    )
    end = parse_instant("until", until, dates=True) if until is not None else now + timedelta(seconds=1)
    if end <= start:
        raise InvalidImageRequest("query.until: must be after since")
    return start, end

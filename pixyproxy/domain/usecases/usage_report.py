"""The usage report: totals per key, model and provider in [since, until); a user key sees its own, an
admin (or keys off) every key's."""

from datetime import datetime

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.tenancy import owner_filter
from pixyproxy.domain.usage import ModelUsage, ProviderUsage, UsageReport, UsageTotal, totals_by


class ReportUsage:
    def __init__(self, repository: ImageRepository) -> None:
        self.repository = repository

    async def __call__(self, since: datetime, until: datetime, caller: Caller | None = None) -> UsageReport:
        if until <= since:
            raise InvalidImageRequest("until: must be after since")
        owner = owner_filter(caller)
        rows = await self.repository.usage_totals(since, until, owner)  # per key, model and provider
        totals = totals_by(rows, UsageTotal, "key")
        if owner is not None and not totals:  # a key that made nothing still sees its own zero line
            totals = [
                UsageTotal(
                    key=owner,
                    images=0,
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                    estimated_cost_usd=0.0,
                )
            ]
        return UsageReport(
            since=since,
            until=until,
            keys=totals,
            models=totals_by([r for r in rows if r.model is not None], ModelUsage, "model", "provider"),
            providers=totals_by(rows, ProviderUsage, "provider"),
        )

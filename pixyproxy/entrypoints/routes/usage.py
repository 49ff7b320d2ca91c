"""Usage: per-key totals of what the provider did (images, tokens, estimated cost) over a period."""

from fastapi import APIRouter, Depends, Query, Request, Response

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.instants import INSTANT_PATTERN
from pixyproxy.domain.models import Caller
from pixyproxy.domain.usage import UsageReport, usage_period
from pixyproxy.entrypoints.dependencies import caller, services
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import error_responses

router = APIRouter(tags=["usage"])

DESCRIPTION = """Every provider call counts (an edit too, and a generation whose image could not be
stored): images, the tokens the provider reported, and a cost estimated from the configured price table
(`PIXYPROXY_PRICES`). A user key sees its own line; an admin key sees every key's (`key` null: made with
keys off). The period is `[since, until)`; by default today (UTC) until now."""


@twin_routes(
    router,
    ["GET"],
    "/usage",
    response_model=UsageReport,
    summary="Usage per API key over a period",
    description=DESCRIPTION,
    responses=error_responses(422, 503),
)
async def usage(
    request: Request,
    since: str | None = Query(
        default=None,
        max_length=40,
        pattern=INSTANT_PATTERN,
        description="Start, inclusive: 2026-11-24 or 2026-11-24T00:00:00Z; default today 00:00 UTC.",
    ),
    until: str | None = Query(
        default=None, max_length=40, pattern=INSTANT_PATTERN, description="End, exclusive; default now."
    ),
    who: Caller | None = Depends(caller),
) -> Response:
    start, end = usage_period(since, until, utc_now())
    report = await services(request).report_usage()(start, end, who)
    return Response(report.model_dump_json(), media_type="application/json")

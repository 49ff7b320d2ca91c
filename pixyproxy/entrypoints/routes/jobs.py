"""Generation jobs: submit (202 + Location), read, list, cancel, and a server-sent events stream.

`/image/{guid}` never takes `/image/jobs`: the image routes' guid convertor (routes/paths.py) skips it.
"""

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter
from sse_starlette import EventSourceResponse

from pixyproxy.domain.cursor import MAX_CURSOR_LENGTH
from pixyproxy.domain.jobs_models import Job, JobRequest, JobStatus
from pixyproxy.domain.models import Caller
from pixyproxy.domain.usecases.listing import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from pixyproxy.entrypoints.dependencies import caller, idempotency_key, services
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import ErrorModel, error_responses

router = APIRouter(tags=["jobs"])
_job_json = TypeAdapter(Job).dump_json
_list_json = TypeAdapter(list[Job]).dump_json
PING_SECONDS = 15  # a comment line this often keeps proxies from closing an idle stream


def _responses(*statuses: int) -> dict:
    out = error_responses(*statuses)
    if 404 in out:
        out[404] = {"description": "No job has that id (or it is another key's).", "model": ErrorModel}
    return out


def _answer(job: Job, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_job_json(job), status, headers, media_type="application/json")


@twin_routes(
    router,
    ["POST"],
    "/image/jobs",
    status_code=202,
    response_model=Job,
    summary="Submit a generation job (1-10 images); it runs in the background",
    description="Answers at once with the queued job and `Location: /image/jobs/{id}`. Poll that, "
    "stream `/image/jobs/{id}/events`, or give a `webhook_url` to be told when it ends. "
    "`Idempotency-Key` works as on `POST /image/`.",
    responses={**_responses(409, 413, 422, 503), 202: {"description": "The job, queued."}},
)
async def submit_job(
    body: JobRequest,
    request: Request,
    key: str | None = Depends(idempotency_key),
    who: Caller | None = Depends(caller),
) -> Response:
    job = await services(request).submit_job()(body, who, key)
    return _answer(job, 202, {"Location": f"/image/jobs/{job.id}"})


@twin_routes(
    router,
    ["GET"],
    "/image/jobs",
    response_model=list[Job],
    summary="List jobs, newest first",
    description='Pages follow the `Link: <...>; rel="next"` header, as on `GET /image/`.',
    responses=_responses(422, 503),
)
async def list_jobs(
    request: Request,
    limit: int = Query(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="Jobs per page."),
    cursor: str | None = Query(
        default=None, max_length=MAX_CURSOR_LENGTH, description="From the previous Link header."
    ),
    status: JobStatus | None = Query(default=None, description="Only jobs in this status."),
    who: Caller | None = Depends(caller),
) -> Response:
    items, next_cursor = await services(request).read_jobs().page(who, status, limit, cursor)
    headers = None
    if next_cursor:
        next_url = request.url.include_query_params(limit=limit, cursor=next_cursor)
        headers = {"Link": f'<{next_url}>; rel="next"'}
    return Response(_list_json(items), headers=headers, media_type="application/json")


@twin_routes(
    router,
    ["GET"],
    "/image/jobs/{job_id}",
    response_model=Job,
    summary="A job: its status, and its images once it has succeeded",
    responses=_responses(404, 503),
)
async def get_job(job_id: str, request: Request, who: Caller | None = Depends(caller)) -> Response:
    return _answer(await services(request).read_jobs()(job_id, who))


@twin_routes(
    router,
    ["DELETE"],
    "/image/jobs/{job_id}",
    status_code=202,
    response_model=Job,
    summary="Cancel a queued or running job",
    description="The provider call is cancelled and nothing more is stored. A job that has already "
    "ended answers 409 (code job_finished).",
    responses={
        **_responses(404, 503),
        202: {"description": "The job, canceled."},
        409: {"description": "The job has already ended.", "model": ErrorModel},
    },
)
async def cancel_job(job_id: str, request: Request, who: Caller | None = Depends(caller)) -> Response:
    return _answer(await services(request).cancel_job()(job_id, who), 202)


@twin_routes(
    router,
    ["GET"],
    "/image/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="A job's events as server-sent events",
    description="First a `status` event with the job as it is; then a `status` event (data: the job) "
    'on every change, a `progress` event (data: `{"progress": 0..1}`) each time the job\'s progress '
    'moves (at most a few a second), `partial_image` events (data: `{"image", "index", "b64_json"}`) '
    "where the generator streams previews and the job asked for `partial_images`, and `done` once it "
    "has ended.",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        **_responses(404, 503),
    },
)
async def job_events(
    job_id: str, request: Request, who: Caller | None = Depends(caller)
) -> EventSourceResponse:
    events = services(request).job_events()(job_id, who)
    first = await anext(events)  # an unknown job is a plain 404 before the stream starts

    async def stream():
        try:
            for event in (first,):
                yield _sse(event)
            async for event in events:
                yield _sse(event)
        finally:
            await events.aclose()

    return EventSourceResponse(stream(), ping=PING_SECONDS, headers={"Cache-Control": "no-store"})


def _sse(event) -> dict:
    data = event.data
    text = _job_json(data).decode() if isinstance(data, Job) else orjson.dumps(data).decode()
    return {"event": event.name, "data": text}

"""Edits: a new image made from a stored one (plus an optional mask and references) as a prompt says.

`/image/{guid}` cannot shadow `/image/{guid}/edits` (a path parameter never spans a `/`), so this router
comes after images.router in ROUTERS: the hot reads are not tried against these routes first.
"""

from fastapi import APIRouter, Depends, Request, Response
from pydantic import TypeAdapter

from pixyproxy.domain.models import Caller, EditRequest, ImageDetail
from pixyproxy.entrypoints.dependencies import caller, idempotency_key, services
from pixyproxy.entrypoints.routes.images import cost_header
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import error_responses

router = APIRouter(tags=["images"])
_detail_json = TypeAdapter(ImageDetail).dump_json

DESCRIPTION = """The source's stored bytes go to the generator with the prompt (and the mask's and
references' bytes); the answer is the new image's details, with `parent_guid` (and `mask_guid`,
`reference_guids`) naming what it was made from. The source is unchanged.

An unknown source guid is a 404; an unknown `mask_guid` or `reference_guids` entry, or a mask whose size
differs from the source's, is a 422. `Idempotency-Key` works as on `POST /image/`."""


@twin_routes(
    router,
    ["POST"],
    "/image/{guid:image_guid}/edits",
    response_model=ImageDetail,
    summary="Edit a stored image with a prompt; the result is stored as a new image",
    description=DESCRIPTION,
    responses=error_responses(404, 409, 413, 422, 502, 503, 504),
)
async def edit_image(
    guid: str,
    body: EditRequest,
    request: Request,
    key: str | None = Depends(idempotency_key),
    who: Caller | None = Depends(caller),
) -> Response:
    detail = await services(request).edit_stored_image()(guid, body, who, key)
    return Response(_detail_json(detail), headers=cost_header(detail), media_type="application/json")

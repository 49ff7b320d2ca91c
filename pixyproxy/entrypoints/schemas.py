"""Response models that exist only at the HTTP edge (the domain's ImageDetail is served as is)."""

from datetime import datetime

from pydantic import BaseModel, Field


class ErrorModel(BaseModel):
    detail: str = Field(description="What went wrong, for a person.")
    code: str = Field(description="A stable machine code, e.g. image_not_found, invalid_request.")
    request_id: str = Field(description="The X-Request-ID of the failed request, for support.")


class ContentUrl(BaseModel):
    url: str = Field(description="A URL that serves the image bytes with a plain GET.")
    expires_at: datetime | None = Field(description="When the URL stops working; null if it does not.")


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = Field(description="`ready`.")
    checks: dict[str, str] = Field(description="Each dependency and `ok`.")


class NotReady(ErrorModel):
    checks: dict[str, str] = Field(description="Each dependency and `ok` or what is wrong with it.")


def error_responses(*statuses: int) -> dict[int | str, dict]:
    descriptions = {
        304: "Not modified (If-None-Match matched the ETag).",
        404: "No image has that guid.",
        409: "The Idempotency-Key was used with a different request.",
        413: "The request body is too large.",
        416: "The requested byte range is not satisfiable.",
        429: "This API key's daily budget is used up (`budget_exceeded`; Retry-After says until when).",
        422: "The request is not valid (or the generator refused the prompt).",
        502: "The image generator failed.",
        503: "A dependency (metadata, storage, generator rate limit) is unavailable.",
        504: "The image generator timed out.",
    }
    out: dict[int | str, dict] = {}
    for status in statuses:
        out[status] = {"description": descriptions[status]}
        if status != 304:
            out[status]["model"] = ErrorModel
    out[500] = {"description": "Unexpected error (no internal detail is returned).", "model": ErrorModel}
    return out

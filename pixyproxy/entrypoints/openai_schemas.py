"""The /v1 face's request and response shapes, as OpenAI's Images API and its SDKs have them.

Requests take every parameter OpenAI's Images API defines: what the chosen model takes is passed on,
what it does not take is a 400 naming the parameter (never dropped unsaid). Parameters OpenAI does not
define are ignored, so a tool that sends its own extras still works. The JSON body is strict about types (a
number is a number); the multipart form of edits carries text, so its fields are read leniently.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pixyproxy.domain.models import PROMPT_CEILING, GenerationRequest

_OPTION = GenerationRequest.model_fields  # one description per option, the domain's


class ImagesBody(BaseModel):
    """POST /v1/images/generations; also the fields of POST /v1/images/edits."""

    model_config = ConfigDict(extra="ignore", strict=True)

    prompt: str = Field(min_length=1, max_length=PROMPT_CEILING, description=_OPTION["prompt"].description)
    model: str | None = Field(default=None, description="See GET /v1/models; absent: the configured model.")
    n: int | None = Field(default=None, ge=1, le=10, description="How many images (1-10), each stored.")
    size: str | None = Field(default=None, max_length=20, description=_OPTION["size"].description)
    quality: str | None = Field(default=None, max_length=20, description=_OPTION["quality"].description)
    background: Literal["auto", "transparent", "opaque"] | None = Field(
        default=None, description=_OPTION["background"].description
    )
    output_format: Literal["png", "webp", "jpeg", "gif", "svg"] | None = Field(
        default=None, description=_OPTION["output_format"].description
    )
    complexity: Literal["low", "medium", "high"] | None = Field(
        default=None, description=_OPTION["complexity"].description
    )
    frame_count: int | None = Field(default=None, description=_OPTION["frame_count"].description)
    frame_duration_ms: int | None = Field(default=None, description=_OPTION["frame_duration_ms"].description)
    svg: dict[str, Any] | None = Field(default=None, description=_OPTION["svg"].description)
    style: Literal["vivid", "natural"] | None = Field(
        default=None, description="Retired DALL·E models only: refused (400), never dropped unsaid."
    )
    output_compression: int | None = Field(default=None, ge=0, le=100, description="0-100, webp and jpeg.")
    moderation: Literal["auto", "low"] | None = Field(
        default=None, description=_OPTION["moderation"].description
    )
    response_format: Literal["b64_json", "url"] | None = Field(
        default=None,
        description="b64_json (the default): the image in the answer; url: a URL PixyProxy serves the stored "
        "image at (presigned on S3).",
    )
    stream: bool | None = Field(
        default=None,
        description="Server-sent events: partial images (image_generation.partial_image, or image_edit.* "
        "for edits) and then the completed image. One image (n 1).",
    )
    partial_images: int | None = Field(default=None, ge=0, le=3, description="Previews to stream, 0-3.")
    user: str | None = Field(default=None, max_length=256, description="Accepted and not used.")

    def domain_fields(self) -> dict[str, Any]:
        """What the domain's GenerationRequest takes (n is made here, one image per request)."""
        return self.model_dump(
            include={
                "prompt",
                "model",
                "size",
                "quality",
                "background",
                "output_format",
                "output_compression",
                "moderation",
                "complexity",
                "frame_count",
                "frame_duration_ms",
                "svg",
                "style",  # the domain knows no style: refused by name there
            },
            exclude_none=True,
        )


class EditFields(ImagesBody):
    """The text fields of POST /v1/images/edits' multipart form: text, read leniently."""

    model_config = ConfigDict(extra="ignore", strict=False)


class ImageItem(BaseModel):
    b64_json: str | None = Field(default=None, description="The image, base64 (the default).")
    url: str | None = Field(default=None, description="With response_format url: where it is served.")
    revised_prompt: str | None = Field(default=None, description="Where the generator gave one.")
    guid: str = Field(description="PixyProxy's guid of the stored image (GET /image/{guid}).")


class ImagesAnswer(BaseModel):
    created: int = Field(description="Unix seconds.")
    data: list[ImageItem]
    background: Literal["transparent", "opaque"] | None = None
    output_format: Literal["png", "webp", "jpeg", "gif", "svg"] | None = None
    quality: str | None = None
    size: str | None = Field(default=None, description="WIDTHxHEIGHT of the images made.")
    usage: dict[str, Any] | None = Field(default=None, description="Tokens, as the generator reported.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


DESCRIPTIONS = {
    400: "The request is not valid (or the generator refused the prompt); `param` names the field.",
    401: "No API key, or not a valid one.",
    404: "No such model.",
    429: "Too many image requests for this API key; retry after the Retry-After seconds.",
    500: "Unexpected error (no internal detail is returned).",
    502: "The image generator failed.",
    503: "A dependency (metadata, storage, generator rate limit) is unavailable.",
    504: "The image generator timed out.",
}


def openai_error_responses(*statuses: int) -> dict[int | str, dict]:
    return {s: {"description": DESCRIPTIONS[s], "model": OpenAIError} for s in (*statuses, 401, 500)}

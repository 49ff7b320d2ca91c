"""The MCP tools: names, descriptions, annotations, and input/output schemas generated from the same
pydantic models as the HTTP API. Shared by the /mcp endpoint and `pixyproxy mcp` (stdio), so it imports
only the domain's models (pydantic) and the MCP types.
"""

from typing import Any

import mcp.types as types
from pydantic import BaseModel

from pixyproxy.domain.jobs_models import JobRequest
from pixyproxy.domain.models import EditRequest, ImageDetail
from pixyproxy.domain.usage import UsageReport

GENERATE, EDIT, GET, SEARCH, MODELS, DELETE, USAGE = (
    "generate_image",
    "edit_image",
    "get_image",
    "search_images",
    "list_models",
    "delete_image",
    "get_usage",
)
PREVIEW_WIDTH = 512  # the image sent into the chat: small enough to keep a conversation light
THUMBNAIL_WIDTH = 128  # search results' thumbnails
DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT = 10, 50
GUID = {"type": "string", "format": "uuid", "description": "The image's guid."}
INSTANT = {"type": "string", "maxLength": 40}
PREVIEWS_NEED_PROGRESS = (
    "partial_images: previews are reported as progress notifications; call with a progress token"
)


class ToolFailure(Exception):
    """A call that fails for a reason to show the model (a bad argument, an unknown guid, a provider
    error): answered as a tool result with isError, carrying the HTTP API's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _model_input(model: type[BaseModel], drop: set[str], extra: dict[str, Any] | None = None) -> dict:
    """The model's JSON schema without the fields this tool does not take, closed to others."""
    schema = model.model_json_schema()
    properties = {**(extra or {}), **{k: v for k, v in schema["properties"].items() if k not in drop}}
    required = [*(extra or {}), *(name for name in schema.get("required", []) if name not in drop)]
    out = _object(properties, required)
    if "$defs" in schema:
        out["$defs"] = schema["$defs"]
    return out


IMAGE_SCHEMA = ImageDetail.model_json_schema(mode="serialization")
_IMAGES = {"images": {"type": "array", "items": IMAGE_SCHEMA}}
_MODEL = _object(
    {
        "id": {"type": "string", "description": "What to pass as `model`."},
        "default": {"type": "boolean", "description": "Used when `model` is left out."},
    },
    ["id", "default"],
)
_USAGE_OUTPUT = UsageReport.model_json_schema(mode="serialization")


def _tool(
    name: str,
    title: str,
    description: str,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    **hints: bool,
) -> types.Tool:
    return types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=types.ToolAnnotations(title=title, **hints),
    )


TOOLS: list[types.Tool] = [
    _tool(
        GENERATE,
        "Generate an image",
        "Draw an image from a prompt and store it. Returns its details, a WebP preview of at most "
        f"{PREVIEW_WIDTH} px and a link to the full image. With a progress token it runs as a job and "
        "reports its status (and previews, where the model streams them); cancelling stores nothing.",
        _model_input(JobRequest, {"n", "webhook_url"}),
        IMAGE_SCHEMA,
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=True,
    ),
    _tool(
        EDIT,
        "Edit an image",
        "Make a new image from a stored one and a prompt; a mask (a stored PNG of the same size whose "
        "transparent pixels mark what to change) and reference images are optional. Returns the new "
        "image like generate_image.",
        _model_input(EditRequest, {"n", "moderation"}, {"guid": GUID}),
        IMAGE_SCHEMA,
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=True,
    ),
    _tool(
        GET,
        "Get an image",
        f"A stored image's details, its WebP preview (at most {PREVIEW_WIDTH} px) and a link to it.",
        _object({"guid": GUID}, ["guid"]),
        IMAGE_SCHEMA,
        read_only_hint=True,
    ),
    _tool(
        SEARCH,
        "Search images",
        "Stored images, newest first: every word of `q` in the prompt (any case or accent), one model, "
        f"an RFC 3339 window. Returns their details and {THUMBNAIL_WIDTH} px WebP thumbnails.",
        _object(
            {
                "q": {"type": "string", "maxLength": 200, "description": "Words of the prompt."},
                "model": {"type": "string", "maxLength": 100, "description": "Only this model's images."},
                "created_after": {**INSTANT, "description": "RFC 3339, exclusive."},
                "created_before": {**INSTANT, "description": "RFC 3339, exclusive."},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_SEARCH_LIMIT,
                    "default": DEFAULT_SEARCH_LIMIT,
                },
            }
        ),
        _object(_IMAGES, ["images"]),
        read_only_hint=True,
    ),
    _tool(
        MODELS,
        "List models",
        "The image models this PixyProxy can use, and which one is the default.",
        _object({}),
        _object({"models": {"type": "array", "items": _MODEL}}, ["models"]),
        read_only_hint=True,
    ),
    _tool(
        DELETE,
        "Delete an image",
        "Delete a stored image: its record, its bytes and every variant. It cannot be undone.",
        _object({"guid": GUID}, ["guid"]),
        _object({"guid": {"type": "string"}, "deleted": {"type": "boolean"}}, ["guid", "deleted"]),
        read_only_hint=False,
        destructive_hint=True,
        idempotent_hint=True,
    ),
    _tool(
        USAGE,
        "Get usage",
        "Images, tokens and estimated cost per API key over a period: [since, until), by default today "
        "(UTC) until now.",
        _object(
            {
                "since": {**INSTANT, "description": "2026-11-24 or 2026-11-24T00:00:00Z, inclusive."},
                "until": {**INSTANT, "description": "Exclusive; default now."},
            }
        ),
        _USAGE_OUTPUT,
        read_only_hint=True,
    ),
]
BY_NAME = {tool.name: tool for tool in TOOLS}


def check_arguments(tool: types.Tool, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Refuse, by name, what the tool does not take and what it cannot do without; the values
    themselves are checked where the HTTP API checks them, so the messages are the same."""
    arguments = dict(arguments or {})
    known = tool.input_schema["properties"]
    for name in arguments:
        if name not in known:
            takes = ", ".join(known) or "no arguments"
            raise ToolFailure(f"{name[:100]}: {tool.name} takes no such argument (it takes {takes})")
    for name in tool.input_schema.get("required", []):
        if name not in arguments:
            raise ToolFailure(f"{name}: Field required")
    for name, value in arguments.items():  # the tools' own string fields; the API models check theirs
        if known[name].get("type") == "string" and not isinstance(value, str):
            raise ToolFailure(f"{name[:100]}: Input should be a valid string")
    return arguments


def search_limit(arguments: dict[str, Any]) -> int:
    limit = arguments.get("limit", DEFAULT_SEARCH_LIMIT)
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ToolFailure(f"limit: must be an integer between 1 and {MAX_SEARCH_LIMIT}")
    return limit

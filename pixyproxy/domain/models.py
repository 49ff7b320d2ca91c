"""The domain's data: what a client asks for, what a generator returns, what is stored and served."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pixyproxy.domain.guids import CanonicalGuid

# Newline and tab are the only control characters a prompt may hold.
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# A hard ceiling on what any prompt can be; the configured limit (default 4000) is checked by the service.
PROMPT_CEILING = 32_000
PNG = "image/png"
# The formats an image can be made and stored in: output_format -> (content type, file extension).
OUTPUT_FORMATS = {
    "png": (PNG, "png"),
    "webp": ("image/webp", "webp"),
    "jpeg": ("image/jpeg", "jpg"),
    "gif": ("image/gif", "gif"),  # animated: frame_count frames of frame_duration_ms each
    "svg": ("image/svg+xml", "svg"),  # served under a sandboxing Content-Security-Policy
}
SVG = "image/svg+xml"
# A request field is refused by name when the chosen model does not take it (domain/capabilities.py).
OPTION_NAMES = (
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
    "negative_prompt",
)
NEGATIVE_PROMPT_MAX = 4000  # the default limit of a prompt
MIN_SIDE, MAX_SIDE = 16, 4096  # the shape check on `size`; each generator decides what it can draw
MAX_REFERENCES = 15  # an edit sends the source plus these: the Images API takes up to 16 images


class SvgReasoning(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = Field(
        default=None, description="How much the SVG author reasons; absent: its default."
    )


class SvgOptions(BaseModel):
    """Who authors an SVG (output_format svg), as OpenAI's Images API takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$", description="The SVG author model.")
    reasoning: SvgReasoning | None = None


def _clean_text(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{name} must not be empty")
    if _FORBIDDEN_CONTROL.search(value):
        raise ValueError(f"{name} must not contain control characters other than newline and tab")
    return value


class GenerationRequest(BaseModel):
    """What a client asks for. The web layer parses it; the service validates it again. A field it does
    not know is refused by name (extra="forbid"): nothing a client sends is silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(
        min_length=1,
        max_length=PROMPT_CEILING,
        description="What to draw: 1..4000 characters by default, trimmed; no control characters "
        "other than newline and tab.",
        examples=["a lighthouse at dusk, watercolour"],
    )
    model: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$",
        description="Generator model; absent means the configured default.",
    )
    size: str | None = Field(
        default=None,
        pattern=r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$",
        description="`auto` or WIDTHxHEIGHT, each side 16..4096 (the generator decides which it can "
        "draw); absent means the configured default.",
    )
    quality: str | None = Field(
        default=None,
        pattern=r"^[a-z]{1,20}$",
        description="Quality level such as auto, low, medium, high (the generator decides which it takes).",
    )
    background: Literal["auto", "transparent", "opaque"] | None = Field(
        default=None, description="`transparent` needs output_format png or webp."
    )
    output_format: Literal["png", "webp", "jpeg", "gif", "svg"] | None = Field(
        default=None,
        description="The format the image is made and stored in; absent means png. gif is animated "
        "(frame_count, frame_duration_ms); svg is a vector drawing (its author in `svg`).",
    )
    output_compression: int | None = Field(
        default=None, ge=0, le=100, description="0..100, for webp and jpeg only."
    )
    moderation: Literal["auto", "low"] | None = Field(
        default=None, description="The provider's filtering level."
    )
    complexity: Literal["low", "medium", "high"] | None = Field(
        default=None, description="Planning spent on the image, apart from its rendering quality."
    )
    frame_count: int | None = Field(
        default=None, ge=2, le=16, description="Frames of a gif (2..16; the provider's default 9)."
    )
    frame_duration_ms: int | None = Field(
        default=None, ge=10, le=655_350, description="Each gif frame's delay in milliseconds (default 200)."
    )
    svg: SvgOptions | None = Field(default=None, description="The SVG author, for output_format svg.")
    negative_prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=NEGATIVE_PROMPT_MAX,
        description=f"What not to draw (1..{NEGATIVE_PROMPT_MAX} characters), for models that take one "
        "(Stable Diffusion servers: a1111, comfyui; offline); refused by name by the others.",
        examples=["blurry, text, watermark"],
    )
    n: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="How many images. `POST /image/` makes one; several are for POST /image/jobs and "
        "POST /v1/images/generations.",
    )

    @field_validator("prompt")
    @classmethod
    def _clean_prompt(cls, value: str) -> str:
        return _clean_text(value, "prompt")

    @field_validator("negative_prompt")
    @classmethod
    def _clean_negative_prompt(cls, value: str | None) -> str | None:
        return _clean_text(value, "negative_prompt") if value is not None else None

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is not None and value != "auto":
            width, height = (int(n) for n in value.split("x"))
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise ValueError(f"each side must be between {MIN_SIDE} and {MAX_SIDE}")
        return value

    # Field validators, not a model one, so an error names its field (fields validate in declared order).
    @field_validator("output_format")
    @classmethod
    def _alpha_needs_a_format_with_alpha(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "jpeg" and info.data.get("background") == "transparent":
            raise ValueError("jpeg has no alpha: background transparent needs output_format png or webp")
        return value

    @field_validator("output_compression")
    @classmethod
    def _compression_needs_a_lossy_format(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and (info.data.get("output_format") or "png") not in ("webp", "jpeg"):
            raise ValueError("output_compression is for output_format webp or jpeg only")
        return value

    @field_validator("frame_count", "frame_duration_ms")
    @classmethod
    def _frames_need_a_gif(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("output_format") != "gif":
            raise ValueError(f"{info.field_name} is for output_format gif only")
        return value

    @field_validator("svg")
    @classmethod
    def _svg_needs_svg(cls, value: SvgOptions | None, info: ValidationInfo) -> SvgOptions | None:
        if value is not None and info.data.get("output_format") != "svg":
            raise ValueError("svg is for output_format svg only")
        return value

    @property
    def format(self) -> str:
        return self.output_format or "png"

    def options(self) -> dict[str, Any]:
        """The options the client set (OPTION_NAMES), by name."""
        return {name: getattr(self, name) for name in OPTION_NAMES if getattr(self, name) is not None}


class EditRequest(GenerationRequest):
    """An edit of a stored image: the prompt says what to change; a mask limits where."""

    mask_guid: CanonicalGuid | None = Field(
        default=None,
        description="A stored PNG of the source's size whose fully transparent pixels mark what to change.",
    )
    reference_guids: list[CanonicalGuid] | None = Field(
        default=None,
        max_length=MAX_REFERENCES,
        description=f"Up to {MAX_REFERENCES} more stored images sent with the source as references.",
    )
    # The Images API's edits endpoint has no moderation level (the pinned SDK's images.edit takes none):
    # refused here, before anything is sent, rather than dropped unsaid.
    moderation: None = Field(default=None, description="Not for edits: the Images API's edits take none.")

    @field_validator("moderation", mode="before")
    @classmethod
    def _no_moderation(cls, value: object) -> None:
        if value is not None:
            raise ValueError("edits take no moderation level (the Images API's edits endpoint has none)")
        return None


class ImageDetail(BaseModel):
    """One stored image, as the API returns it and the metadata store keeps it."""

    model_config = ConfigDict(frozen=True)

    guid: UUID
    prompt: str
    filename: str = Field(
        description="`{guid}.png`, `{guid}.webp` or `{guid}.jpg` by format; never derived from the prompt."
    )
    created_at: datetime = Field(description="When the image was stored, UTC, ISO 8601.")
    content_type: str = PNG
    size_bytes: int
    width: int
    height: int
    model: str = Field(description="The generator/model that made the image.")
    size: str | None = Field(default=None, description="The size asked of the generator.")
    quality: str | None = None
    revised_prompt: str | None = Field(default=None, description="The provider's rewrite of the prompt.")
    usage: dict[str, Any] | None = Field(
        default=None, description="The provider's token usage as it reported it (tokens and their details)."
    )
    sha256: str = Field(description="Hex SHA-256 of the stored bytes; the content's strong ETag.")
    background: str | None = Field(default=None, description="The background asked for (or reported).")
    output_format: str | None = Field(
        default=None, description="png, webp or jpeg; null on older images (png)."
    )
    output_compression: int | None = None
    moderation: str | None = None
    safety_identifier: str | None = Field(
        default=None,
        description="The stable hash of the caller's API key sent to the provider (never the key).",
    )
    parent_guid: UUID | None = Field(default=None, description="The image this one is an edit of.")
    mask_guid: UUID | None = Field(default=None, description="The mask the edit used.")
    reference_guids: list[UUID] | None = Field(default=None, description="More images the edit was given.")
    owner: str | None = Field(
        default=None,
        description="The name of the API key that made the image (never the key); null when keys are off.",
    )
    estimated_cost_usd: float | None = Field(
        default=None, description="The generation's cost estimated from the configured price table."
    )
    provider: str | None = Field(
        default=None,
        description="Which provider made it (openai, azure, gemini, offline); null on older images.",
    )
    deployment: str | None = Field(
        default=None, description="Which of the model's deployments made it (`name#1`, `name#2` ...)."
    )
    attempts: int | None = Field(
        default=None, description="Deployments tried for it, the one that made it included."
    )

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@dataclass(frozen=True)
class GeneratedImage:
    """What a generator hands back: the bytes (any format Pillow reads) and what it knows of them."""

    data: bytes
    model: str
    size: str | None = None
    quality: str | None = None
    revised_prompt: str | None = None
    usage: dict[str, Any] | None = None
    background: str | None = None  # as the provider reports it
    output_format: str | None = None
    provider: str | None = None  # set by the routing generator: who made it, where, after how many tries
    deployment: str | None = None
    attempts: int | None = None
    cost_usd: float | None = None  # the catalogue's estimate; None: the service's price table decides


@dataclass(frozen=True)
class SourceImage:
    """Stored bytes handed to a generator's edit: the image to change, a mask or a reference."""

    data: bytes
    content_type: str
    filename: str
    width: int
    height: int


@dataclass(frozen=True)
class PartialImage:
    """A preview a generator streams before the final image (index 0, 1, 2 ...)."""

    index: int
    data: bytes
    output_format: str


# Called with each partial image as it arrives, when a caller asks for them.
OnPartial = Callable[[PartialImage], Awaitable[None]]


@dataclass(frozen=True)
class Caller:
    """Who asks: an API key's name (never the key) and its role. None where keys are off (all open).

    A `user` sees, serves and deletes only what it created; an `admin` sees everything."""

    name: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class PagePosition:
    """Where a page ends in the list order (created_at desc, id desc); `id` is internal."""

    created_at: datetime
    id: int


@dataclass(frozen=True)
class ImagePage:
    items: list[ImageDetail]
    next: PagePosition | None = None


@dataclass(frozen=True)
class IdempotentResult:
    """An image stored under an Idempotency-Key, with the hash of the request that made it."""

    detail: ImageDetail
    request_hash: str


@dataclass
class ContentRange:
    """Which bytes of a blob to send: start and end inclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks.values())

"""The domain's data: what a client asks for, what a generator returns, what is stored and served."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Newline and tab are the only control characters a prompt may hold.
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# A hard ceiling on what any prompt can be; the configured limit (default 4000) is checked by the service.
PROMPT_CEILING = 32_000
PNG = "image/png"


class GenerationRequest(BaseModel):
    """What a client asks for. The web layer parses it; the service validates it again."""

    model_config = ConfigDict(extra="ignore", frozen=True)

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
        description="Image size such as 1024x1024; absent means the configured default.",
    )
    quality: str | None = Field(
        default=None,
        pattern=r"^[a-z]{1,20}$",
        description="Quality level such as low, medium, high, standard, hd, auto.",
    )

    @field_validator("prompt")
    @classmethod
    def _clean_prompt(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("prompt must not be empty")
        if _FORBIDDEN_CONTROL.search(value):
            raise ValueError("prompt must not contain control characters other than newline and tab")
        return value


class ImageDetail(BaseModel):
    """One stored image, as the API returns it and the metadata store keeps it."""

    model_config = ConfigDict(frozen=True)

    guid: UUID
    prompt: str
    filename: str = Field(description="Always `{guid}.png`; never derived from the prompt.")
    created_at: datetime = Field(description="When the image was stored, UTC, ISO 8601.")
    content_type: str = PNG
    size_bytes: int
    width: int
    height: int
    model: str = Field(description="The generator/model that made the image.")
    size: str | None = Field(default=None, description="The size asked of the generator.")
    quality: str | None = None
    revised_prompt: str | None = Field(default=None, description="The provider's rewrite of the prompt.")
    usage: dict[str, Any] | None = Field(default=None, description="The provider's token usage, if given.")
    sha256: str = Field(description="Hex SHA-256 of the PNG bytes; the content's strong ETag.")

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

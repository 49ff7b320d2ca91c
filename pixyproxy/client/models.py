"""What the API returns, as the client's own pydantic models (no server code is imported).

Unknown fields are ignored, so a newer server does not break an older client.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class ImageDetail(BaseModel):
    """One stored image."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    guid: UUID
    prompt: str
    filename: str
    created_at: datetime
    content_type: str = "image/png"
    size_bytes: int
    width: int
    height: int
    model: str
    size: str | None = None
    quality: str | None = None
    revised_prompt: str | None = None
    usage: dict[str, Any] | None = None
    sha256: str
    background: str | None = None
    output_format: str | None = None  # png, webp or jpeg (None: an image from before formats, a PNG)
    output_compression: int | None = None
    moderation: str | None = None
    safety_identifier: str | None = None
    parent_guid: UUID | None = None  # the image this one is an edit of
    mask_guid: UUID | None = None
    reference_guids: list[UUID] | None = None


class ContentUrl(BaseModel):
    """A URL serving the image bytes to a plain GET (presigned on S3; `expires_at` None if it lasts)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    expires_at: datetime | None = None

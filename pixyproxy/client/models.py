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


class ContentUrl(BaseModel):
    """A URL serving the image bytes to a plain GET (presigned on S3; `expires_at` None if it lasts)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    expires_at: datetime | None = None

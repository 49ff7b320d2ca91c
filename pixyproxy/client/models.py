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


class UsageTotal(BaseModel):
    """One API key's provider calls in the period (`key` None: images made with keys off)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str | None = None
    images: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    estimated_cost_usd: float


class UsageReport(BaseModel):
    """GET /usage: per-key totals over `[since, until)`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    since: datetime
    until: datetime
    keys: list[UsageTotal]


# -- generation jobs ---------------------------------------------------------------------------------

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
FINISHED_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class JobError(BaseModel):
    """Why a job failed: `code` is one of the error table's codes (e.g. generator_timeout)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    detail: str


class JobImage(ImageDetail):
    """An image a job made; `deleted` once the image itself has been deleted (its details stay)."""

    deleted: bool = False


class Job(BaseModel):
    """A generation job (POST /image/jobs): `images` holds the n images once it has succeeded."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID
    status: str  # queued, running, succeeded, failed or canceled
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request: dict[str, Any] = {}
    images: list[JobImage] = []
    error: JobError | None = None
    attempts: int = 0
    # 0..1: images stored plus what the provider reports of those being made, over n; None until the
    # server has something to tell (or it is older than progress); 1 once succeeded.
    progress: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class StatusEvent(BaseModel):
    """The job as it is now: sent first, then on every change."""

    model_config = ConfigDict(frozen=True)

    job: Job


class ProgressEvent(BaseModel):
    """How far the job has got (0..1), each time it moves: at most a few times a second."""

    model_config = ConfigDict(frozen=True)

    progress: float


class PartialImageEvent(BaseModel):
    """A preview of image `image` (0-based, of the job's n) while it is made; `index` counts previews."""

    model_config = ConfigDict(frozen=True)

    image: int = 0
    index: int
    b64_json: str

    @property
    def data(self) -> bytes:
        import base64

        return base64.b64decode(self.b64_json)


class DoneEvent(BaseModel):
    """The job has ended; the stream closes after this."""

    model_config = ConfigDict(frozen=True)

    job: Job


JobEvent = StatusEvent | ProgressEvent | PartialImageEvent | DoneEvent

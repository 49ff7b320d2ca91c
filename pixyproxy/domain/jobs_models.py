"""Generation jobs: what a client submits, and the job record it polls, lists, streams or cancels."""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pixyproxy.domain.models import GenerationRequest, ImageDetail, PagePosition

MAX_WEBHOOK_URL_LENGTH = 2048


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})


class JobRequest(GenerationRequest):
    """The body of POST /image/ plus how many images, an optional webhook and streamed previews."""

    n: int | None = Field(default=None, ge=1, le=10, description="How many images the job makes: 1..10.")
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL_LENGTH,
        description="http(s) URL told when the job ends (a signed POST); private addresses are refused.",
    )
    partial_images: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="Previews per image streamed as `partial_image` events (0..3), where the generator "
        "streams them.",
    )

    @field_validator("partial_images")
    @classmethod
    def _previews_need_a_raster(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and info.data.get("output_format") in ("gif", "svg"):
            raise ValueError("partial_images: output_format gif and svg have no previews")
        return value

    @property
    def count(self) -> int:
        return self.n or 1

    def image_request(self) -> GenerationRequest:
        """What each of the job's images is made from: the POST /image/ body, one image."""
        return GenerationRequest.model_validate(
            self.model_dump(exclude={"n", "webhook_url", "partial_images"})
        )


class JobError(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(description="One of the codes of the error table (e.g. generator_timeout).")
    detail: str


class JobImage(ImageDetail):
    """An image a job made, as the job shows it: `deleted` once the image itself is gone."""

    deleted: bool = Field(default=False, description="The image was deleted; its details are as made.")


class Job(BaseModel):
    """One generation job as the API answers it and the job store keeps it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request: JobRequest
    images: list[JobImage] = Field(
        default_factory=list, description="The images made, in order; n of them once succeeded."
    )
    error: JobError | None = None
    attempts: int = Field(default=0, description="How many times a worker started the job.")
    progress: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="How far the job has got, 0..1: its images stored plus what the provider reports of "
        "those being made (where it reports), over n. Null until there is something to tell; 1 once "
        "succeeded.",
    )
    # Who submitted it (an API key's name); kept, never shown.
    owner: str | None = Field(default=None, exclude=True)

    @field_validator("images", mode="before")
    @classmethod
    def _as_job_images(cls, images: list[Any]) -> list[Any]:
        """The worker hands over the ImageDetails it stored."""
        return [image.model_dump() if type(image) is ImageDetail else image for image in images]

    @field_validator("created_at", "started_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next: PagePosition | None = None


@dataclass(frozen=True)
class StoredJob:
    """A job as read by its Idempotency-Key, with the hash of the request that made it."""

    job: Job
    request_hash: str


@dataclass(frozen=True)
class JobEvent:
    """What an events stream sends: `status` (data: the job), `progress` (data: {"progress": 0..1}),
    `partial_image` or `done`."""

    name: str
    data: Any

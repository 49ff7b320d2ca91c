"""The use cases wired over any ports (the fakes, or a real store in contract tests), as the container
wires them: one call builds the lot, so a test names only what it changes."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.ports.blobs import BlobStore
from pixyproxy.domain.ports.counters import IdempotencyLocks
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.ports.jobs import JobFinished, JobStore
from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.domain.ports.repository import ImageRepository
from pixyproxy.domain.usage import DEFAULT_PRICES, Price
from pixyproxy.domain.usecases.budgets import Budgets
from pixyproxy.domain.usecases.delete import DeleteImage
from pixyproxy.domain.usecases.edit_stored import EditStoredImage
from pixyproxy.domain.usecases.edit_uploads import EditUploads
from pixyproxy.domain.usecases.generate import GenerateImage
from pixyproxy.domain.usecases.idempotency import DEFAULT_IDEMPOTENCY_TTL_SECONDS, Idempotency
from pixyproxy.domain.usecases.jobs.board import JobBoard
from pixyproxy.domain.usecases.jobs.cancel import CancelJob
from pixyproxy.domain.usecases.jobs.ending import HandOnEnd
from pixyproxy.domain.usecases.jobs.events import DEFAULT_EVENTS_POLL_SECONDS, JobEvents
from pixyproxy.domain.usecases.jobs.reading import ReadJobs
from pixyproxy.domain.usecases.jobs.run import RunJob
from pixyproxy.domain.usecases.jobs.submit import SubmitJob
from pixyproxy.domain.usecases.listing import ListImages
from pixyproxy.domain.usecases.metering import ProviderCalls
from pixyproxy.domain.usecases.readiness import CheckReadiness
from pixyproxy.domain.usecases.reading import ImageContent, ReadImage
from pixyproxy.domain.usecases.storing import ImageRecords, ImageWriter
from pixyproxy.domain.usecases.usage_report import ReportUsage
from pixyproxy.domain.usecases.validation import DEFAULT_MAX_PROMPT_LENGTH, RequestRules


@dataclass
class UseCases:
    generator: ImageGenerator
    repository: ImageRepository
    blobs: BlobStore
    rules: RequestRules
    idempotency: Idempotency
    writer: ImageWriter
    records: ImageRecords
    generate: GenerateImage
    edit: EditStoredImage
    edit_uploads: EditUploads
    read: ReadImage
    content: ImageContent
    list_images: ListImages
    delete: DeleteImage
    report_usage: ReportUsage
    readiness: CheckReadiness


def build_use_cases(
    generator: ImageGenerator,
    repository: ImageRepository,
    blobs: BlobStore,
    *,
    max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH,
    idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
    clock: Callable[[], datetime] = utc_now,
    new_guid: Callable[[], UUID] = uuid4,
    budgets: Budgets | None = None,
    prices: Mapping[str, Price] = DEFAULT_PRICES,
    locks: IdempotencyLocks | None = None,
    metrics: MetricsRecorder | None = None,
) -> UseCases:
    rules = RequestRules(generator, max_prompt_length)
    idempotency = Idempotency(idempotency_ttl_seconds, locks=locks, clock=clock)
    calls = ProviderCalls(repository, budgets=budgets, prices=prices, metrics=metrics, clock=clock)
    writer = ImageWriter(repository, blobs, clock=clock, new_guid=new_guid, outcome_checks=(0, 0, 0))
    records = ImageRecords(repository)
    read = ReadImage(repository)
    content = ImageContent(repository, blobs)
    return UseCases(
        generator=generator,
        repository=repository,
        blobs=blobs,
        rules=rules,
        idempotency=idempotency,
        writer=writer,
        records=records,
        generate=GenerateImage(rules, calls, writer, idempotency, records, generator),
        edit=EditStoredImage(rules, read, content, calls, writer, idempotency, records, generator),
        edit_uploads=EditUploads(rules, calls, writer, generator),
        read=read,
        content=content,
        list_images=ListImages(repository),
        delete=DeleteImage(read, repository, blobs, outcome_checks=(0, 0, 0)),
        report_usage=ReportUsage(repository),
        readiness=CheckReadiness(
            {"metadata": repository, "storage": blobs, "generator": generator, "redis": locks}
        ),
    )


@dataclass
class JobUseCases:
    store: JobStore
    board: JobBoard
    submit: SubmitJob
    read: ReadJobs
    cancel: CancelJob
    events: JobEvents
    run: RunJob
    hand_on: HandOnEnd

    @property
    def max_attempts(self) -> int:
        return self.run.max_attempts


def build_job_use_cases(
    store: JobStore,
    images: UseCases,
    *,
    job_finished: JobFinished | None = None,
    check_webhook: Callable[[str], Any] | None = None,
    clock: Callable[[], datetime] = utc_now,
    events_poll_seconds: float = DEFAULT_EVENTS_POLL_SECONDS,
) -> JobUseCases:
    board = JobBoard()
    read = ReadJobs(store, images.repository)
    hand_on = HandOnEnd(store, board, job_finished)
    return JobUseCases(
        store=store,
        board=board,
        submit=SubmitJob(
            store, images.rules, images.idempotency, board, check_webhook=check_webhook, clock=clock
        ),
        read=read,
        cancel=CancelJob(read, store, board, hand_on, clock),
        events=JobEvents(read, store, board, events_poll_seconds),
        run=RunJob(
            store,
            images.generate,
            images.writer,
            images.idempotency,
            images.records,
            board,
            hand_on,
            clock=clock,
        ),
        hand_on=hand_on,
    )

"""The dependency-injector container: the only place that names adapters, picked from settings, and
the one declaration of how they start and stop (the lifespan and every CLI command use it)."""

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from dependency_injector import containers, providers

from pixyproxy.adapters.dns_resolver import SystemHostResolver
from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.adapters.metered import MeteredBlobStore, MeteredGenerator
from pixyproxy.adapters.otlp_tracing import otlp_tracer
from pixyproxy.adapters.prometheus_metrics import PrometheusMetrics
from pixyproxy.adapters.traced import JobTraces, traced, traced_attempts, traced_job_runs, traced_job_store
from pixyproxy.domain.jobs_worker import JobWorker
from pixyproxy.domain.maintenance import GarbageCollector
from pixyproxy.domain.usecases.delete import DeleteImage
from pixyproxy.domain.usecases.edit_stored import EditStoredImage
from pixyproxy.domain.usecases.edit_uploads import EditUploads
from pixyproxy.domain.usecases.generate import GenerateImage
from pixyproxy.domain.usecases.idempotency import Idempotency
from pixyproxy.domain.usecases.jobs.board import JobBoard
from pixyproxy.domain.usecases.jobs.cancel import CancelJob
from pixyproxy.domain.usecases.jobs.ending import HandOnEnd
from pixyproxy.domain.usecases.jobs.events import JobEvents
from pixyproxy.domain.usecases.jobs.reading import ReadJobs
from pixyproxy.domain.usecases.jobs.run import RunJob
from pixyproxy.domain.usecases.jobs.submit import SubmitJob
from pixyproxy.domain.usecases.listing import ListImages
from pixyproxy.domain.usecases.metering import ProviderCalls
from pixyproxy.domain.usecases.readiness import CheckReadiness
from pixyproxy.domain.usecases.reading import ImageContent, ReadImage
from pixyproxy.domain.usecases.storing import ImageRecords, ImageWriter
from pixyproxy.domain.usecases.usage_report import ReportUsage
from pixyproxy.domain.usecases.validation import RequestRules
from pixyproxy.domain.usecases.variants import ImageVariants
from pixyproxy.domain.variants import VariantMaker
from pixyproxy.domain.webhook_dispatcher import WebhookDispatcher, WebhookNotifier
from pixyproxy.domain.webhooks import RetryPolicy
from pixyproxy.settings import Settings

T = TypeVar("T")


async def done(pending: Awaitable[T] | None) -> T:
    """A resource's start or stop, awaited: every resource here is async, though dependency-injector's
    types allow a synchronous one (which answers None)."""
    assert pending is not None, "the container's resources start and stop asynchronously"
    return await pending


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:"""
    return url.split(":///", 1)[1] if ":///" in url else url.split(":", 1)[1]


def file_root(url: str) -> Path:
    """file:relative/dir or file:///absolute/dir"""
    parts = urlsplit(url)
    return Path(unquote(parts.path if parts.netloc in ("", "localhost") else f"//{parts.netloc}{parts.path}"))


def megabytes(mb: int) -> int:
    return mb * 1024 * 1024


# Adapters with heavy client libraries are imported only when selected, so the embedded default starts
# without loading the OpenAI SDK (seconds), boto3 (~100 ms) or the MySQL driver.
def routing_generator(settings: Settings, cooldowns, metrics=None, tracer=None):
    """The catalogue's models behind the generator port: PIXYPROXY_MODELS_FILE, or today's settings as a
    catalogue of one model. Each provider's SDK is imported only when the catalogue names it."""
    from pixyproxy.adapters.catalogue_file import build_routing, legacy_file, read_catalogue_file
    from pixyproxy.adapters.providers.base import ProviderContext

    context = ProviderContext(
        timeout_seconds=settings.openai_timeout_seconds,
        connect_timeout_seconds=settings.openai_connect_timeout_seconds,
        max_retries=settings.openai_max_retries,
        offline_latency_seconds=settings.offline_latency_seconds,
        default_size=settings.openai_size,
        default_quality=settings.openai_quality,
        environment=settings.environment,
    )
    if settings.models_file is None:
        file, legacy = legacy_file(settings.generator, settings.openai_model), True
    else:
        file, legacy = read_catalogue_file(settings.models_file), False
    routing = build_routing(
        file, context, cooldowns, settings.cooldown_seconds, legacy=legacy, recorder=metrics
    )
    return traced_attempts(routing, tracer)  # with traces on: a span per provider attempt


def check_models_file(settings: Settings) -> None:
    """Refuse a models file that cannot be used before anything starts: a ValueError of one line naming
    the entry and the field (or the key variable that is not set, never its value)."""
    if settings.models_file is None:
        return
    from pixyproxy.adapters.catalogue_file import check_keys, read_catalogue_file

    check_keys(read_catalogue_file(settings.models_file), settings.environment)


def cooldowns(redis_url: str | None, timeout_seconds: float):
    """Deployment cooldowns: shared by every replica through Redis when configured, per process otherwise."""
    if not redis_url:
        from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns

        return MemoryCooldowns()
    from pixyproxy.adapters.redis_cooldowns import RedisCooldowns

    return RedisCooldowns(redis_url, timeout_seconds)


def sql_database(url: str, **options):
    """The one SQL engine of the process (SQLite or MySQL, by the URL), shared by every table's store."""
    from pixyproxy.adapters.sql.database import Database

    return Database(url, **options)


def sql_store(kind: str, database):
    """A table's store on the shared database: "images", "jobs" or "webhooks"."""
    from pixyproxy.adapters.sql.images import SQLImageRepository
    from pixyproxy.adapters.sql.jobs import SQLJobStore
    from pixyproxy.adapters.sql.webhooks import SQLWebhookOutbox

    return {"images": SQLImageRepository, "jobs": SQLJobStore, "webhooks": SQLWebhookOutbox}[kind](database)


def webhook_check(settings: Settings):
    """The submit-time check of a job's webhook_url: http(s), and no private, loopback or link-local
    address (DNS asked) unless allowed; refused outright without PIXYPROXY_WEBHOOK_SECRET. Delivery
    checks it again."""
    from pixyproxy.domain.webhook_urls import WebhookUrlPolicy

    enabled = settings.webhook_secret is not None
    resolver = SystemHostResolver(settings.webhook_connect_timeout_seconds)
    return WebhookUrlPolicy(resolver, settings.webhook_allow_private, enabled).check


def webhook_sender(secret, **options):
    """None without a secret: no job can then be given a webhook_url, so nothing is sent."""
    if secret is None:
        return None
    from pixyproxy.adapters.webhook_sender import HttpWebhookSender

    return HttpWebhookSender(secret.get_secret_value(), **options)


def webhook_dispatcher(outbox, sender, resolver, **options):
    return None if sender is None else WebhookDispatcher(outbox, sender, resolver, **options)


async def webhooks_started(outbox, sender, dispatcher, *_started) -> AsyncIterator:
    """The outbox table, the HTTP client and the delivery worker, once the stores have started."""
    if dispatcher is None:
        yield None
        return
    await outbox.init()
    await sender.init()
    await dispatcher.init()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()
        await sender.close()
        await outbox.close()


async def started_after(adapter, *_started) -> AsyncIterator:
    """Start `adapter` once the resources it is given have started (the schema exists); close it first."""
    await adapter.init()
    try:
        yield adapter
    finally:
        await adapter.close()


def limits_storage(redis_url: str | None, timeout_seconds: float):
    from pixyproxy.adapters.limits_counters import limits_storage as storage

    return storage(redis_url, timeout_seconds)


def rate_limiter(storage, per_minute: float, burst: int | None):
    """None when no rate is configured (the middleware is then not installed)."""
    if per_minute <= 0:
        return None
    from pixyproxy.adapters.limits_counters import LimitsRateLimiter

    return LimitsRateLimiter(storage, per_minute, burst)


def budgets(storage, default, per_key):
    """None when no key has a budget: generations then pay nothing for the check."""
    if not default.limited and not any(b.limited for b in per_key.values()):
        return None
    from pixyproxy.adapters.limits_counters import LimitsUsageCounter
    from pixyproxy.domain.usecases.budgets import Budgets

    return Budgets(LimitsUsageCounter(storage), default, per_key)


def idempotency_locks(redis_url: str | None, timeout_seconds: float):
    """Only with Redis: without it, one process's in-flight map is the only coalescing there is."""
    if not redis_url:
        return None
    from pixyproxy.adapters.redis_locks import RedisIdempotencyLocks

    return RedisIdempotencyLocks(redis_url, timeout_seconds)


def s3_blob_store(url: str, **options):
    from pixyproxy.adapters.s3_blob_store import S3BlobStore

    return S3BlobStore(url, **options)


def schema_known(revision: str) -> bool:
    """Whether this code knows `revision` (a database at one it does not is newer than the code)."""
    from pixyproxy.adapters.sql import schema

    return any(known == revision for known, _, _ in schema.history())


async def opened(*adapters) -> AsyncIterator[tuple]:
    """Start each adapter (schema, folder, bucket) in order; at shut-down close them in reverse."""
    started = []
    try:
        for adapter in adapters:
            await adapter.init()
            started.append(adapter)
        yield adapters
    finally:
        for adapter in reversed(started):
            await adapter.close()


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings)

    # The metadata store: one engine and pool per process (SQLite or MySQL, by database_url), shared by
    # the images, jobs and webhook outbox stores; the server, `init`, `gc` and `reindex` all use it.
    database = providers.Singleton(
        sql_database,
        settings.provided.database_url,
        pool_min_size=settings.provided.mysql_pool_min_size,
        pool_max_size=settings.provided.mysql_pool_max_size,
        pool_recycle_seconds=settings.provided.mysql_pool_recycle_seconds,
        connect_timeout_seconds=settings.provided.mysql_connect_timeout_seconds,
        read_timeout_seconds=settings.provided.mysql_read_timeout_seconds,
        init_timeout_seconds=settings.provided.mysql_init_timeout_seconds,
        sqlite_busy_timeout_seconds=settings.provided.sqlite_busy_timeout_seconds,
    )
    repository = providers.Singleton(sql_store, "images", database)

    blobs = providers.Selector(
        providers.Callable(lambda s: s.storage_scheme, settings),
        file=providers.Singleton(
            FileBlobStore,
            providers.Callable(file_root, settings.provided.storage_url),
            min_free_bytes=providers.Callable(
                lambda mb: mb * 1024 * 1024, settings.provided.storage_min_free_mb
            ),
        ),
        s3=providers.Singleton(
            s3_blob_store,
            settings.provided.storage_url,
            public_endpoint_url=settings.provided.s3_public_endpoint_url,
            connect_timeout=settings.provided.s3_connect_timeout_seconds,
            read_timeout=settings.provided.s3_read_timeout_seconds,
            max_attempts=settings.provided.s3_max_attempts,
        ),
    )

    metrics = providers.Singleton(
        PrometheusMetrics, multiprocess_dir=settings.provided.prometheus_multiproc_dir
    )
    cooldowns = providers.Singleton(
        cooldowns, settings.provided.redis_url, settings.provided.redis_timeout_seconds
    )
    tracer = providers.Singleton(otlp_tracer, settings.provided.otel_exporter_otlp_endpoint)
    generator = providers.Singleton(routing_generator, settings, cooldowns, metrics, tracer)

    # Start-up and shut-down, declared once: `init_resources()` runs both, `storage.init()` only the stores
    # (what `pixyproxy init` and `gc` need: no generator, so no OpenAI key).
    storage = providers.Resource(opened, repository, blobs)
    generator_started = providers.Resource(opened, generator)

    # The service sees metered decorators; the adapters themselves stay unmeasured (routing counts each
    # provider attempt).
    metered_generator = providers.Singleton(MeteredGenerator, generator, metrics)
    metered_blobs = providers.Singleton(MeteredBlobStore, blobs, metrics)
    # Traces (OTEL_EXPORTER_OTLP_ENDPOINT set): spans around each port's calls; unset, the same objects.
    job_traces = providers.Singleton(JobTraces)
    traced_generator = providers.Singleton(traced, metered_generator, tracer, "generator")
    traced_blobs = providers.Singleton(traced, metered_blobs, tracer, "storage")
    traced_repository = providers.Singleton(traced, repository, tracer, "db")

    # Limits, budgets and Idempotency-Key locks: per process in memory, or shared by replicas in Redis.
    limits_storage = providers.Singleton(
        limits_storage, settings.provided.redis_url, settings.provided.redis_timeout_seconds
    )
    rate_limiter = providers.Singleton(
        rate_limiter,
        limits_storage,
        settings.provided.rate_limit_per_minute,
        settings.provided.rate_limit_burst,
    )
    budgets = providers.Singleton(
        budgets, limits_storage, settings.provided.default_budget, settings.provided.budgets
    )
    idempotency_locks = providers.Singleton(
        idempotency_locks, settings.provided.redis_url, settings.provided.redis_timeout_seconds
    )

    # The use cases, each given only what it uses; the policies they share are singletons of their own.
    rules = providers.Singleton(
        RequestRules, traced_generator, max_prompt_length=settings.provided.max_prompt_length
    )
    idempotency = providers.Singleton(
        Idempotency,
        settings.provided.idempotency_ttl_seconds,
        locks=idempotency_locks,
        lock_seconds=settings.provided.idempotency_lock_seconds,
    )
    provider_calls = providers.Singleton(
        ProviderCalls,
        traced_repository,
        budgets=budgets,
        prices=settings.provided.price_table,
        metrics=metrics,
    )
    image_writer = providers.Singleton(ImageWriter, traced_repository, traced_blobs)
    image_records = providers.Singleton(ImageRecords, traced_repository)
    read_image = providers.Singleton(ReadImage, traced_repository)
    image_content = providers.Singleton(ImageContent, traced_repository, traced_blobs)
    generate_image = providers.Singleton(
        GenerateImage, rules, provider_calls, image_writer, idempotency, image_records, traced_generator
    )
    edit_stored_image = providers.Singleton(
        EditStoredImage,
        rules,
        read_image,
        image_content,
        provider_calls,
        image_writer,
        idempotency,
        image_records,
        traced_generator,
    )
    edit_uploads = providers.Singleton(EditUploads, rules, provider_calls, image_writer, traced_generator)
    list_images = providers.Singleton(ListImages, traced_repository)
    delete_image = providers.Singleton(DeleteImage, read_image, traced_repository, traced_blobs)
    report_usage = providers.Singleton(ReportUsage, traced_repository)
    check_readiness = providers.Singleton(
        CheckReadiness,
        # Redis (the shared limits, budgets and Idempotency-Key locks) only when configured.
        providers.Dict(
            metadata=traced_repository,
            storage=traced_blobs,
            generator=traced_generator,
            redis=idempotency_locks,
        ),
        generator,
    )
    # Generation jobs: the store beside the images' metadata, a worker per process (started after the
    # stores), and the hook told when a job ends (webhook delivery overrides the no-op).
    job_store = providers.Singleton(sql_store, "jobs", database)
    traced_jobs = providers.Singleton(traced_job_store, job_store, tracer, job_traces)
    # Job webhooks: an outbox beside the jobs, sent by a worker in each process (none without a secret).
    webhook_outbox = providers.Singleton(sql_store, "webhooks", database)
    webhook_sender = providers.Singleton(
        webhook_sender,
        settings.provided.webhook_secret,
        connect_timeout_seconds=settings.provided.webhook_connect_timeout_seconds,
        timeout_seconds=settings.provided.webhook_timeout_seconds,
        max_connections=settings.provided.webhook_concurrency,
    )
    webhook_dispatcher = providers.Singleton(
        webhook_dispatcher,
        providers.Singleton(traced, webhook_outbox, tracer, "db"),
        webhook_sender,
        providers.Singleton(SystemHostResolver, settings.provided.webhook_connect_timeout_seconds),
        retry=providers.Singleton(
            RetryPolicy,
            max_attempts=settings.provided.webhook_max_attempts,
            base_seconds=settings.provided.webhook_retry_base_seconds,
            max_delay_seconds=settings.provided.webhook_retry_max_delay_seconds,
        ),
        allow_private=settings.provided.webhook_allow_private,
        timeout_seconds=settings.provided.webhook_timeout_seconds,
        concurrency=settings.provided.webhook_concurrency,
        lease_seconds=settings.provided.webhook_lease_seconds,
        poll_seconds=settings.provided.webhook_poll_seconds,
        metrics=metrics,
    )
    job_finished = providers.Singleton(WebhookNotifier, webhook_dispatcher)
    job_webhook_check = providers.Singleton(webhook_check, settings)
    job_board = providers.Singleton(JobBoard)
    read_jobs = providers.Singleton(ReadJobs, traced_jobs, traced_repository)
    hand_on_end = providers.Singleton(HandOnEnd, traced_jobs, job_board, job_finished)
    submit_job = providers.Singleton(
        SubmitJob, traced_jobs, rules, idempotency, job_board, check_webhook=job_webhook_check
    )
    cancel_job = providers.Singleton(CancelJob, read_jobs, traced_jobs, job_board, hand_on_end)
    job_events = providers.Singleton(JobEvents, read_jobs, traced_jobs, job_board)
    run_job = providers.Singleton(
        RunJob,
        traced_jobs,
        generate_image,
        image_writer,
        idempotency,
        image_records,
        job_board,
        hand_on_end,
        max_attempts=settings.provided.job_max_attempts,
    )
    job_worker = providers.Singleton(
        JobWorker,
        providers.Singleton(traced_job_runs, run_job, tracer, job_traces),
        concurrency=settings.provided.job_concurrency,
        lease_seconds=settings.provided.job_lease_seconds,
        poll_seconds=settings.provided.job_poll_seconds,
        enabled=settings.provided.job_worker,
    )
    job_storage = providers.Resource(started_after, job_store, storage)
    job_worker_started = providers.Resource(started_after, job_worker, job_storage, generator_started)
    webhooks_started = providers.Resource(
        webhooks_started, webhook_outbox, webhook_sender, webhook_dispatcher, job_storage
    )

    garbage_collector = providers.Factory(GarbageCollector, repository=repository, blobs=blobs)
    # One per process: its single flight and its cap on encodes at once hold for the whole process.
    variants = providers.Singleton(
        VariantMaker, traced_blobs, max_concurrent_encodes=settings.provided.variant_max_concurrent_encodes
    )
    image_variants = providers.Singleton(ImageVariants, variants, image_content)

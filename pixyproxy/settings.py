"""Every setting of the service, from the environment (PIXYPROXY_*) and an optional .env file.

The one place that reads the environment (the SDKs' own variables aside: boto3's AWS_*, openai's
OPENAI_*) and the one place each default is written. The container hands the values to the adapters.
"""

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixyproxy.domain import webhook_dispatcher as webhook_worker
from pixyproxy.domain import webhooks
from pixyproxy.domain.jobs_worker import DEFAULT_CONCURRENCY, DEFAULT_LEASE_SECONDS, DEFAULT_POLL_SECONDS
from pixyproxy.domain.usage import DEFAULT_PRICES, Budget, Price
from pixyproxy.domain.usecases.idempotency import (
    DEFAULT_IDEMPOTENCY_LOCK_SECONDS,
    DEFAULT_IDEMPOTENCY_TTL_SECONDS,
)
from pixyproxy.domain.usecases.jobs.run import DEFAULT_MAX_ATTEMPTS
from pixyproxy.domain.usecases.validation import DEFAULT_MAX_PROMPT_LENGTH
from pixyproxy.domain.variants import DEFAULT_MAX_CONCURRENT_ENCODES

DEFAULT_DATA_DIR = Path("pixyproxy-data")
# prometheus-client reads this variable itself in every worker process; `serve --workers N` sets it.
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ENV_PREFIX = "PIXYPROXY_"
ENV_FILE = ".env"
DATABASE_SCHEMES = {"sqlite": "sqlite:///path/to.db", "mysql": "mysql://user:pass@host:3306/db"}
STORAGE_SCHEMES = {"file": "file:dir or file:///abs/dir", "s3": "s3://bucket/prefix"}
# PIXYPROXY_* names read by something other than the service: the client and CLI (PIXYPROXY_URL,
# PIXYPROXY_API_KEY), deploy/compose.yaml's own, and the tests' and benchmarks' (by prefix).
OTHER_TOOLS_VARIABLES = frozenset(
    {"PIXYPROXY_URL", "PIXYPROXY_API_KEY", "PIXYPROXY_REPLICAS", "PIXYPROXY_HTTP_PORT", "PIXYPROXY_IMAGE"}
)
OTHER_TOOLS_PREFIXES = ("PIXYPROXY_TEST_", "PIXYPROXY_BENCH_")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=ENV_FILE, extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'pixyproxy.db'}",
        description="sqlite:///path/to.db or mysql://user:pass@host:3306/db",
    )
    storage_url: str = Field(
        default=f"file:{DEFAULT_DATA_DIR / 'images'}",
        description="file:relative/dir, file:///absolute/dir or s3://bucket/optional-prefix",
    )
    generator: Literal["offline", "openai"] = "offline"

    # The server (`pixyproxy serve`; its options override these)
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8001, ge=1, le=65535, description="Port to listen on.")
    workers: int = Field(default=1, ge=1, description="Worker processes (the service is stateless).")
    server: Literal["uvicorn", "granian"] = Field(
        default="uvicorn",
        description="The ASGI server `serve` runs: uvicorn, or Granian (see docs/operations.md).",
    )
    graceful_timeout: int = Field(
        default=30,
        ge=0,
        description="On SIGTERM, seconds to let in-flight requests (generations too) finish.",
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=PROMETHEUS_MULTIPROC_ENV,
        description="A folder shared by worker processes so /metrics adds up all of them.",
    )

    # Requests
    max_prompt_length: int = Field(default=DEFAULT_MAX_PROMPT_LENGTH, ge=1, le=32_000)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(
        default=26_214_400,
        ge=1024,
        description="Largest body of POST /v1/images/edits (images uploaded as multipart); 25 MiB.",
    )
    storage_min_free_mb: int = Field(
        default=64,
        ge=0,
        description="Space kept free on a local image folder's disk: writes that would take it below are "
        "refused (503) and /readyz reports not ready, so deletes keep working.",
    )
    log_level: str = "INFO"
    gc_grace_seconds: int = Field(default=3600, ge=0)
    idempotency_ttl_seconds: int = Field(
        default=DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        ge=1,
        description="How long an Idempotency-Key returns its first image (24 h).",
    )
    url_ttl_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    # Image life: retention (`pixyproxy gc`) and variants (?width=&format= on content and url)
    retention_days: float | None = Field(
        default=None, gt=0, description="`pixyproxy gc` deletes images older than this; unset: kept forever."
    )
    retention_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Images gc deletes per batch (rows, then their bytes)."
    )
    variant_max_concurrent_encodes: int = Field(
        default=DEFAULT_MAX_CONCURRENT_ENCODES,
        ge=1,
        le=64,
        description="Variant encodes one process runs at once (each holds a CPU in a worker thread).",
    )
    negotiate_format: bool = Field(
        default=False,
        description="Without ?format=, pick avif or webp from the Accept header (answers Vary: Accept).",
    )
    offline_latency_seconds: float = Field(
        default=0.0, ge=0, le=600, description="Delay added by the offline generator, to imitate a provider."
    )

    # Security (docs/security.md): everything here is off unless set.
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated API keys; when set (or api_keys_file), routes need one."
    )
    api_keys_file: Path | None = Field(
        default=None, description="A file of SHA-256 hex digests of API keys, one per line (# comments)."
    )
    metrics_key: SecretStr | None = Field(
        default=None,
        description="A key that opens /metrics only (for a Prometheus scrape); with API keys on, /metrics "
        "otherwise needs an admin key.",
    )
    rate_limit_per_minute: float = Field(
        default=0.0, ge=0, description="POST /image/ requests per minute per API key (0: no limit)."
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="Requests a key may make at once; default: the per-minute rate."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins CORS allows (https://app.example); empty: off."
    )

    # MCP at /mcp (docs/mcp.md): DNS-rebinding protection.
    mcp_allowed_hosts: str = Field(
        default="",
        description="Host headers /mcp answers besides 127.0.0.1, localhost, [::1] and --host: the names "
        "clients reach this server by, comma-separated (pixyproxy.example.com: any port; name:port: that "
        "one); * allows any.",
    )
    mcp_allowed_origins: str = Field(
        default="",
        description="Origin headers (sent by browsers) /mcp answers besides those of the allowed hosts and "
        "PIXYPROXY_CORS_ORIGINS, comma-separated (https://chat.example); * allows any.",
    )

    # Tenancy: budgets, prices, and what replicas share through Redis (docs/security.md).
    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: rate limits, budgets and Idempotency-Key locks shared by every "
        "replica; unset: each process counts on its own.",
    )
    redis_timeout_seconds: float = Field(default=2.0, gt=0, description="Connect and reply timeout.")
    budget_images_per_day: int = Field(
        default=0, ge=0, description="Images each API key may have made per UTC day (0: no limit)."
    )
    budget_tokens_per_day: int = Field(
        default=0, ge=0, description="Provider tokens each API key may use per UTC day (0: no limit)."
    )
    budgets: dict[str, Budget] = Field(
        default_factory=dict,
        description='Per key name, JSON: {"ducky": {"images_per_day": 500, "tokens_per_day": 0}}; '
        "replaces both defaults above for that key.",
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description='USD per model, JSON: {"gpt-image-1": {"input_per_million": 5, "output_per_million": 40, '
        '"per_image": 0}}; added to (or replacing) the built-in table; "*" prices any other model.',
    )
    idempotency_lock_seconds: float = Field(
        default=DEFAULT_IDEMPOTENCY_LOCK_SECONDS,
        gt=0,
        description="With Redis: how long a replica's claim on an Idempotency-Key outlives it if it dies.",
    )

    # Traces: on when the standard OTLP endpoint is set; the exporter reads its other OTEL_* itself.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="http://collector:4318: send OpenTelemetry traces there (OTLP over HTTP); unset: none.",
    )

    # S3: credentials, region and endpoint come from boto3's own AWS_* variables.
    s3_public_endpoint_url: str | None = Field(
        default=None, description="Endpoint that clients reach, used to sign presigned URLs."
    )
    # Unreachable or hung S3 must answer 503 within seconds, not hang: a dead endpoint costs at most
    # attempts x connect timeout, one that accepts and never answers attempts x read timeout (each plus
    # a retry backoff under 1 s): about 5 s with these. S3 answers a request in well under 2 s.
    s3_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    s3_read_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Longest silence of S3 within one call (waiting or reading)."
    )
    s3_max_attempts: int = Field(
        default=2, ge=1, le=10, description="Attempts per S3 call, the first included."
    )

    # The model catalogue (docs/providers.md): models, their deployments, fallbacks, aliases and prices.
    models_file: Path | None = Field(
        default=None,
        description="A YAML catalogue of models; unset: PIXYPROXY_GENERATOR (and PIXYPROXY_OPENAI_MODEL) "
        "as a catalogue of one model.",
    )
    cooldown_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long a deployment that answered 429 or 5xx, timed out or refused the connection "
        "is skipped (shared through Redis when PIXYPROXY_REDIS_URL is set).",
    )

    # OpenAI: OPENAI_API_KEY and OPENAI_BASE_URL are read by the SDK itself.
    openai_model: str = "gpt-image-2.6-sunburst"  # see docs/openai.md, "Models today"
    openai_size: str | None = None
    openai_quality: str | None = None
    openai_timeout_seconds: float = Field(default=180.0, gt=0)
    openai_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)

    # Generation jobs (POST /image/jobs): queued in the metadata store, run by a worker in each process.
    job_worker: bool = Field(
        default=True, description="Run jobs in this process (false: it only takes and answers them)."
    )
    job_concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, le=10_000, description="Jobs one process runs at once."
    )
    job_max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=100,
        description="Starts of a job whose process died before it ends failed (job_abandoned).",
    )
    job_lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=1,
        le=3600,
        description="A running job's lease, renewed every third of it; a dead process's job waits this long.",
    )
    job_poll_seconds: float = Field(
        default=DEFAULT_POLL_SECONDS,
        gt=0,
        le=60,
        description="How often an idle worker looks for jobs submitted to other processes.",
    )

    # Job webhooks (docs/jobs.md): signed POSTs when a job ends, from an outbox in the metadata store.
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_<base64>: the Standard Webhooks signing secret; unset: webhook_url is refused.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs on private, loopback and link-local addresses (tests, one LAN).",
    )
    webhook_max_attempts: int = Field(default=webhooks.DEFAULT_MAX_ATTEMPTS, ge=1, le=50)
    webhook_retry_base_seconds: float = Field(
        default=webhooks.DEFAULT_RETRY_BASE_SECONDS,
        gt=0,
        description="Wait after the first failure; doubles.",
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=webhooks.DEFAULT_RETRY_MAX_DELAY_SECONDS, gt=0, description="Longest wait between attempts."
    )
    webhook_timeout_seconds: float = Field(
        default=webhooks.DEFAULT_TIMEOUT_SECONDS, gt=0, le=300, description="One attempt, DNS included."
    )
    webhook_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="The DNS lookup (at submit too), and the TCP and TLS connect."
    )
    webhook_concurrency: int = Field(
        default=webhook_worker.DEFAULT_CONCURRENCY,
        ge=1,
        le=1000,
        description="Attempts one process makes at once.",
    )
    webhook_lease_seconds: float = Field(
        default=webhook_worker.DEFAULT_LEASE_SECONDS,
        gt=0,
        description="How long a claimed delivery is this process's; longer than the timeout.",
    )
    webhook_poll_seconds: float = Field(
        default=webhook_worker.DEFAULT_POLL_SECONDS,
        gt=0,
        le=60,
        description="How often an idle delivery worker looks for deliveries due (other processes', retries).",
    )

    # MySQL (docs/mysql.md): the server, user and database come from database_url (or DB_* below).
    mysql_pool_min_size: int = Field(
        default=1, ge=0, description="Connections opened at start, so the first requests skip a connect."
    )
    mysql_pool_max_size: int = Field(
        default=10,
        ge=1,
        description="Connections per process at most, every table's together (`--workers N`: N pools).",
    )
    mysql_pool_recycle_seconds: float = Field(
        default=600.0, gt=0, description="A pooled connection idle this long is replaced, not reused."
    )
    mysql_connect_timeout_seconds: float = Field(default=3.0, gt=0, description="To open a TCP connection.")
    mysql_read_timeout_seconds: float = Field(
        default=5.0, gt=0, description="For any reply: a statement's, and the login's (after the connect)."
    )
    mysql_init_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Read timeout for schema migrations (DDL on a big table is slow)."
    )

    sqlite_busy_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a write waits for SQLite's write lock (another process's) before a 503.",
    )

    # The course's deployments configure MySQL by these names (env or .env); read them unprefixed.
    db_host: str | None = Field(default=None, validation_alias="DB_HOST")
    db_port: int = Field(default=3306, validation_alias="DB_PORT")
    db_user: str = Field(default="root", validation_alias="DB_USER")
    db_password: SecretStr = Field(default=SecretStr(""), validation_alias="DB_PASSWORD")
    db_name: str = Field(default="pixyproxy", validation_alias="DB_NAME")

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        return _supported_scheme(value, DATABASE_SCHEMES)

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        return _supported_scheme(value, STORAGE_SCHEMES)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not webhooks.valid_secret(value.get_secret_value()):
            raise ValueError(
                "must be whsec_ followed by base64 of at least 16 bytes, e.g. " + webhooks.SECRET_HINT
            )
        return value

    @model_validator(mode="after")
    def _webhook_lease_outlasts_an_attempt(self) -> "Settings":
        # Otherwise another process could take a delivery over while its attempt is still under way.
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "PIXYPROXY_WEBHOOK_LEASE_SECONDS must be longer than PIXYPROXY_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _database_from_db_vars(self) -> "Settings":
        if "database_url" not in self.model_fields_set and self.db_host:
            user = quote(self.db_user, safe="")
            password = quote(self.db_password.get_secret_value(), safe="")
            self.database_url = f"mysql://{user}:{password}@{self.db_host}:{self.db_port}/{self.db_name}"
        return self

    @staticmethod
    def environment(name: str) -> str | None:
        """A variable a catalogue entry names for its key (api_key_env): its value, or None when unset."""
        return os.environ.get(name) or None

    @property
    def price_table(self) -> dict[str, Price]:
        return {**DEFAULT_PRICES, **self.prices}

    @property
    def default_budget(self) -> Budget:
        return Budget(self.budget_images_per_day, self.budget_tokens_per_day)

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def mcp_allowed_host_list(self) -> list[str]:
        return [host.strip() for host in self.mcp_allowed_hosts.split(",") if host.strip()]

    @property
    def mcp_allowed_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.mcp_allowed_origins.split(",") if origin.strip()]

    @property
    def database_scheme(self) -> str:
        return self.database_url.split(":", 1)[0].split("+", 1)[0].lower()

    @property
    def storage_scheme(self) -> str:
        return self.storage_url.split(":", 1)[0].lower()


def _supported_scheme(url: str, schemes: dict[str, str]) -> str:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in schemes:
        # Only the scheme is named: the rest of a URL may hold a password.
        raise ValueError(f"unsupported scheme {scheme!r}; use " + " or ".join(schemes.values()))
    return url


class ConfigurationError(Exception):
    """The configuration cannot run; `problems` says why, one line each, never a secret's value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def variable_name(field: str) -> str:
    """The environment variable a setting is read from."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def variable_names() -> list[str]:
    return [variable_name(field) for field in Settings.model_fields]


def load_settings(**overrides: Any) -> Settings:
    """Settings(), or ConfigurationError with a line per invalid variable (naming it, never its value)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError([_problem(error) for error in exc.errors()]) from None


def _problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    field = str(error["loc"][0])
    name = variable_name(field) if field in Settings.model_fields else field
    return f"{name}: {message}"


def unknown_variables(environ: Mapping[str, str] | None = None, env_file: str | None = ENV_FILE) -> list[str]:
    """A warning for each PIXYPROXY_* variable (environment or .env) that no setting reads, naming the
    closest known one: a misspelled variable is otherwise ignored in silence."""
    names = dict(os.environ if environ is None else environ)
    if env_file and Path(env_file).is_file():
        names.update({key: value or "" for key, value in dotenv_values(env_file).items()})
    known = set(variable_names())
    warnings = []
    for name in sorted(names):
        upper = name.upper()  # pydantic-settings matches names in any case
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in OTHER_TOOLS_VARIABLES:
            continue
        if upper.startswith(OTHER_TOOLS_PREFIXES):
            continue
        closest = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        warnings.append(f"{name} is not a PixyProxy setting and is ignored{hint}")
    return warnings

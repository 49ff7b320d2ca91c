"""What every provider adapter shares: the settings it is built with, which failures send a request on to
the next deployment, and the shared retry, timeout and download code (adapters/openai/failures.py and
download.py, SDK-neutral where it matters: backoff, Retry-After, bounded downloads)."""

from collections.abc import Callable
from dataclasses import dataclass

from pixyproxy.adapters.openai.download import Downloader
from pixyproxy.adapters.openai.failures import RetryPolicy, backoff, retry_after_seconds
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    ImageException,
)

__all__ = ["Downloader", "ProviderContext", "RetryPolicy", "backoff", "fails_over", "retry_after_seconds"]


@dataclass(frozen=True)
class ProviderContext:
    """What the settings give every provider; an entry's own timeout and retries win over these."""

    timeout_seconds: float = 180.0
    connect_timeout_seconds: float = 10.0
    max_retries: int = 2
    offline_latency_seconds: float = 0.0
    default_size: str | None = None
    default_quality: str | None = None
    environment: Callable[[str], str | None] = lambda name: None  # a variable's value (keys)

    def timeout(self, entry: ModelEntry) -> float:
        return entry.timeout_seconds or self.timeout_seconds

    def retries(self, entry: ModelEntry, alternatives: bool) -> int:
        """An entry's own max_retries; else none when routing has somewhere else to go (the next
        deployment is tried at once), the setting's otherwise."""
        if entry.max_retries is not None:
            return entry.max_retries
        return 0 if alternatives else self.max_retries

    def key(self, entry: ModelEntry, default_env: str | None = None) -> str | None:
        name = entry.api_key_env or default_env
        return self.environment(name) if name else None


def fails_over(exc: BaseException) -> bool:
    """A failure that says nothing about the request (429, 5xx, timeout, a connection never made): the
    deployment rests and the next one is tried. A client's mistake or a refusal answers at once."""
    if isinstance(exc, ContentPolicyViolation):
        return False
    if isinstance(exc, GeneratorRateLimited | GeneratorTimeout):
        return True
    return isinstance(exc, GeneratorError) and bool(exc.details.get("failover"))


def unavailable(message: str) -> ImageException:
    """A deployment that cannot serve now (5xx, never reached): the next one is tried."""
    return GeneratorError(message, failover=True)

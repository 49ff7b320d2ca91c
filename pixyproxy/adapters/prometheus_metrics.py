"""The metrics recorder on prometheus-client: what the request middleware and the metered generator and
blob store (adapters/metered.py) report, and the exposition a scrape of /metrics gets.

Each container gets its own registry (tests build many apps in one process). With several worker
processes (`pixyproxy serve --workers N` gives them a shared folder) the scrape adds up every worker's
files through prometheus-client's multiprocess collector, so it sees the whole server.
"""

from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from pixyproxy import __version__

# The `*_created` timestamp series double what a scrape carries and no dashboard here uses them.
disable_created_metrics()
# Requests are mostly milliseconds; content downloads and generations take longer.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Image models often take over a minute.
GENERATOR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300)


class PrometheusMetrics:
    """The service's metrics in their own registry."""

    name = "prometheus"

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "pixyproxy_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "pixyproxy_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response, by method and route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.generations = Counter(
            "pixyproxy_generations",
            "Calls to the image generator by model and outcome (`success` or the error code).",
            ["model", "outcome"],
            registry=r,
        )
        self.provider_attempts = Counter(
            "pixyproxy_provider_attempts",
            "Calls to each deployment of the model catalogue by provider, deployment and outcome "
            "(`success` or the error code); a fallback adds one per deployment tried.",
            ["provider", "deployment", "outcome"],
            registry=r,
        )
        self.provider_seconds = Histogram(
            "pixyproxy_provider_duration_seconds",
            "Time each provider attempt took, by provider and outcome.",
            ["provider", "outcome"],
            buckets=GENERATOR_BUCKETS,
            registry=r,
        )
        self.generator_seconds = Histogram(
            "pixyproxy_generator_duration_seconds",
            "Time the image generator took, by model and outcome.",
            ["model", "outcome"],
            buckets=GENERATOR_BUCKETS,
            registry=r,
        )
        self.stored_bytes = Counter(
            "pixyproxy_stored_bytes", "Bytes of PNG written to image storage.", registry=r
        )
        self.stored_images = Counter(
            "pixyproxy_stored_images", "PNG files written to image storage.", registry=r
        )
        # By API key name: the names come from the configured keys, so these stay a handful of series.
        self.key_images = Counter(
            "pixyproxy_key_images", "Images the provider made, by API key name.", ["key"], registry=r
        )
        self.key_tokens = Counter(
            "pixyproxy_key_tokens",
            "Tokens the provider reported, by API key name and direction (input, output).",
            ["key", "direction"],
            registry=r,
        )
        self.key_cost = Counter(
            "pixyproxy_key_estimated_cost_usd",
            "Estimated cost (configured price table) of the provider's work, by API key name.",
            ["key"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "pixyproxy_budget_refusals",
            "Requests refused (429 budget_exceeded) before the provider was called, by API key name.",
            ["key"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "pixyproxy_webhook_attempts",
            "Job webhook attempts by outcome: delivered, retrying (tried again later) or failed (given up).",
            ["outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "pixyproxy_webhook_attempt_duration_seconds",
            "Time one webhook attempt took (DNS, connect, the receiver's answer), by outcome.",
            ["outcome"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        build = Gauge(
            "pixyproxy_build_info",
            "Always 1; the version is a label.",
            ["version"],
            multiprocess_mode="max",
            registry=r,
        )
        build.labels(version=__version__).set(1)
        # Label children looked up once and kept: the per-request cost is two dict hits and two updates.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    # -- the recorder interface ------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.request_seconds.labels(method=method, route=route),
            )
            self._request_children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)

    def observe_generation(self, model: str, outcome: str, seconds: float) -> None:
        self.generations.labels(model=model, outcome=outcome).inc()
        self.generator_seconds.labels(model=model, outcome=outcome).observe(seconds)

    def observe_provider_attempt(self, provider: str, deployment: str, outcome: str, seconds: float) -> None:
        self.provider_attempts.labels(provider=provider, deployment=deployment, outcome=outcome).inc()
        self.provider_seconds.labels(provider=provider, outcome=outcome).observe(seconds)

    def add_stored(self, size_bytes: int) -> None:
        self.stored_images.inc()
        self.stored_bytes.inc(size_bytes)

    def add_usage(
        self, key: str, images: int, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        self.key_images.labels(key=key).inc(images)
        self.key_tokens.labels(key=key, direction="input").inc(input_tokens)
        self.key_tokens.labels(key=key, direction="output").inc(output_tokens)
        self.key_cost.labels(key=key).inc(cost_usd)

    def add_budget_refusal(self, key: str) -> None:
        self.budget_refusals.labels(key=key).inc()

    def observe_webhook(self, outcome: str, seconds: float) -> None:
        self.webhook_attempts.labels(outcome=outcome).inc()
        self.webhook_seconds.labels(outcome=outcome).observe(seconds)

    # -- exposition ------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        registry = self.registry
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return _generate_latest(registry), CONTENT_TYPE_LATEST

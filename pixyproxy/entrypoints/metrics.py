"""Prometheus metrics: `/metrics`, a pure ASGI middleware that counts and times every request, and the
recorder that the metered generator and blob store (pixyproxy/adapters/metered.py) report to.

Each app gets its own registry (tests build many apps in one process). With several worker processes
(`pixyproxy serve --workers N` sets PROMETHEUS_MULTIPROC_DIR itself) `/metrics` adds up every worker's
files through prometheus-client's multiprocess collector, so a scrape sees the whole server.

Label values are bounded: routes are templates (`/image/{guid}`), never raw paths; a path that matches no
route is `<unmatched>`; methods outside the usual few are `OTHER`.
"""

import os
import time
from collections.abc import Sequence
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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from pixyproxy import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The `*_created` timestamp series double what a scrape carries and no dashboard here uses them.
disable_created_metrics()
# Requests are mostly milliseconds; content downloads and generations take longer.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Image models often take over a minute.
GENERATOR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300)


class Metrics:
    """The service's metrics in their own registry; the recorder the metered adapters call."""

    def __init__(self) -> None:
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

    def add_stored(self, size_bytes: int) -> None:
        self.stored_images.inc()
        self.stored_bytes.inc(size_bytes)

    # -- exposition ------------------------------------------------------------------------------

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry)
            return _generate_latest(registry)
        return _generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        return Response(self.render(), media_type=CONTENT_TYPE_LATEST)


def route_label(route: BaseRoute) -> str:
    """The template, with and without a trailing slash counted as one route."""
    path = getattr(route, "path", None)
    return (path.rstrip("/") or "/") if path else UNMATCHED


def flatten_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The routes themselves, with included routers opened: FastAPI keeps `include_router` routers as
    one entry of the app's route list, and their routes only answer `matches` inside them."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            if not getattr(getattr(route, "include_context", None), "prefix", ""):
                flat.extend(flatten_routes(included.routes))
        else:
            flat.append(route)
    return flat


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status.

    Install it outermost, so requests refused before routing (401, 413, 429) are counted too; for those
    the route is found by matching the path against `routes`, the app's own route list.
    """

    def __init__(self, app, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._flat: list[tuple[BaseRoute, Any, Any]] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            label = route_label(route) if route is not None else self._match(scope)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.observe_request(method, label, status, time.perf_counter() - started)

    def _match(self, scope) -> str:
        """The template of a request answered before routing; `<unmatched>` when no route has its path.

        Each route's own path regex and methods, as the router would match them, without building the
        child scope that `route.matches` does."""
        if self._flat is None:  # built on first use: every route is registered by then
            self._flat = [
                (route, route.path_regex, getattr(route, "methods", None))
                for route in flatten_routes(self.routes)
                if hasattr(route, "path_regex")
            ]
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        method = scope["method"]
        partial = None
        for route, regex, methods in self._flat:
            if regex.match(path):
                if methods is None or method in methods:
                    return route_label(route)
                if partial is None:
                    partial = route
        return route_label(partial) if partial is not None else UNMATCHED

"""create_app(): the FastAPI app, built from a container (tests pass one with overridden providers)."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from pixyproxy import __version__
from pixyproxy.container import Container
from pixyproxy.domain.errors import ImageException
from pixyproxy.entrypoints import routes
from pixyproxy.entrypoints.body_limit import BodyLimitMiddleware
from pixyproxy.entrypoints.errors import handle_error, render
from pixyproxy.entrypoints.hot_paths import HotPathMiddleware
from pixyproxy.entrypoints.metrics import MetricsMiddleware
from pixyproxy.entrypoints.request_context import RequestContextMiddleware
from pixyproxy.entrypoints.security import install_security

log = logging.getLogger("pixyproxy")

DESCRIPTION = """PixyProxy turns a prompt into a stored PNG and serves it.

Every error answers `{"detail": ..., "code": ..., "request_id": ...}`; each response carries `X-Request-ID`.
Paths work with and without a trailing slash."""


def create_app(container: Container | None = None) -> FastAPI:
    container = container or Container()
    # Wire here, not at import time: a route whose module is not wired fails at call time.
    container.wire(modules=[routes])

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        repository, blobs, generator = container.repository(), container.blobs(), container.generator()
        await repository.init()
        await blobs.init()
        container.image_service()  # build it now, not on the first request
        log.info(
            "PixyProxy %s ready: metadata=%s storage=%s generator=%s",
            __version__,
            repository.name,
            blobs.name,
            generator.name,
        )
        try:
            yield
        finally:
            for dependency in (generator, blobs, repository):
                await dependency.close()

    app = FastAPI(
        title="PixyProxy",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry hooks are unused (metrics are Prometheus, at /metrics), yet checking
        # for a provider cost ~8% of a detail read (bench/, figure 1): off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.container = container  # type: ignore[attr-defined]
    for exc_type in (ImageException, RequestValidationError, HTTPException):
        app.add_exception_handler(exc_type, handle_error)
    app.include_router(routes.router)
    # Innermost: the two hot reads skip FastAPI's per-request machinery (measured: bench/, figures 1-2).
    app.add_middleware(HotPathMiddleware, service=container.image_service)
    app.add_middleware(BodyLimitMiddleware, max_bytes=container.settings().max_body_bytes)
    install_security(app, container.settings())  # API keys, rate limit, CORS: only when configured
    # Outermost but for metrics: every request, even one refused by the body limit, gets an id and both
    # log lines.
    app.add_middleware(RequestContextMiddleware, render_unexpected=render)
    # Metrics (issue 8) around everything, so requests refused before routing are counted too.
    metrics = container.metrics()
    for path in ("/metrics", "/metrics/"):
        app.add_route(path, metrics.endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app

"""create_app(): the FastAPI app, built from a container (tests pass one with overridden providers)."""

import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from pixyproxy import __version__
from pixyproxy.container import Container, done
from pixyproxy.domain.errors import ImageException
from pixyproxy.entrypoints.api_docs import documented_app
from pixyproxy.entrypoints.errors import error_response
from pixyproxy.entrypoints.logging_setup import LogHandler, configure_logging
from pixyproxy.entrypoints.malloc_tuning import return_large_blocks
from pixyproxy.entrypoints.mcp.http_app import McpEndpoint
from pixyproxy.entrypoints.middleware.api_keys import ApiKeyCheck, document_security, load_keys
from pixyproxy.entrypoints.middleware.boundary import RequestBoundary
from pixyproxy.entrypoints.middleware.guard import AdmissionCheck, RequestGuard
from pixyproxy.entrypoints.middleware.rate_limit import RateLimitCheck, document_rate_limit
from pixyproxy.entrypoints.middleware.tracing import TracingMiddleware
from pixyproxy.entrypoints.openapi import SchemaPatch, patch_openapi
from pixyproxy.entrypoints.route_match import RouteTable
from pixyproxy.entrypoints.routes import ROUTERS
from pixyproxy.entrypoints.routes.openai_compatible import UPLOAD_PATHS
from pixyproxy.settings import Settings

log = logging.getLogger("pixyproxy")

DESCRIPTION = """PixyProxy turns a prompt into a stored image and serves it.

Every error answers `{"detail": ..., "code": ..., "request_id": ...}`; each response carries `X-Request-ID`.
Paths work with and without a trailing slash."""

CORS_ALLOW_HEADERS = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Idempotency-Key",
    "Range",
    "If-None-Match",
    "If-Range",
]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "Link",
    "ETag",
    "Retry-After",
    "Content-Range",
    "Content-Length",
    "Accept-Ranges",
]


def create_app(container: Container | None = None) -> FastAPI:
    container = container or Container()
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        return_large_blocks()  # decoded images' memory goes back to the OS once freed
        await done(container.init_resources())
        container.generate_image()  # the use cases built now, not on the first request
        container.read_image()
        log.info(
            "PixyProxy %s ready in process %d: metadata=%s storage=%s generator=%s",
            __version__,
            os.getpid(),
            container.repository().name,
            container.blobs().name,
            container.generator().name,
        )
        try:
            async with mcp.running():  # the MCP session manager, inside the stores' lifetime
                yield
        finally:
            await done(container.shutdown_resources())

    app = documented_app(
        title="PixyProxy",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry hooks are unused (metrics are Prometheus) and cost ~8% of a read.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    # Straight into the app's router, ahead of the docs: the router tries routes in order, and
    # include_router() would wrap each router in a layer that matched every request twice over.
    mcp = McpEndpoint(container)
    app.router.routes[0:0] = [*(route for router in ROUTERS for route in router.routes), *mcp.routes]
    app.state.routes = RouteTable(app.router.routes)
    for exc_type in (ImageException, RequestValidationError, HTTPException):
        app.add_exception_handler(exc_type, _handle_error)
    _add_middleware(app, container, settings)
    return app


def serve_app() -> FastAPI:
    """What `pixyproxy serve` runs in each worker: with `--workers N` every worker is a process of its
    own that inherits no logging, so each configures it before it logs its ready line and requests."""
    container = Container()
    if not any(isinstance(handler, LogHandler) for handler in logging.getLogger().handlers):
        configure_logging(container.settings().log_level)  # one worker runs in `serve`'s own process
    return create_app(container)


async def _handle_error(request, exc: Exception):
    """Errors raised inside routing; the request guard answers those raised before routing."""
    response = error_response(exc, request.scope["path"])
    if response.status_code == 405:
        response.headers["Allow"] = ", ".join(request.app.state.routes.allowed_methods(request.scope))
    return response


def _add_middleware(app: FastAPI, container: Container, settings: Settings) -> None:
    """Innermost first (each one added wraps the ones before): the request guard (API keys, then the rate
    limit, then the body's size and encoding, and the error answer for every refusal) > CORS > tracing >
    the request boundary (request id, the two log lines, metrics). CORS sits outside the guard so its
    headers reach refusals; the rate limit runs after the key check so it counts per key; the boundary
    sees every request, refused ones too."""
    patches: list[SchemaPatch] = []
    checks: list[AdmissionCheck] = []
    env_keys = settings.api_keys.get_secret_value() if settings.api_keys else None
    keys = load_keys(env_keys, settings.api_keys_file)
    metrics_key = settings.metrics_key.get_secret_value() if settings.metrics_key else None
    if keys or metrics_key:
        checks.append(ApiKeyCheck(keys=keys, metrics_key=metrics_key))
    if keys:
        patches.append(document_security)
    limiter = container.rate_limiter()
    if limiter is not None:
        checks.append(RateLimitCheck(limiter))
    if limiter is not None or container.budgets() is not None:
        patches.append(document_rate_limit)
    uploads = dict.fromkeys(UPLOAD_PATHS, settings.max_upload_bytes)
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes, larger=uploads, checks=checks)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=600,
        )
    tracer = container.tracer()
    if tracer is not None:  # inside the boundary, so the request id is set when its span starts
        app.add_middleware(TracingMiddleware, tracer=tracer)
    app.add_middleware(RequestBoundary, recorder=container.metrics(), routes=app.state.routes)
    if patches:
        patch_openapi(app, patches)

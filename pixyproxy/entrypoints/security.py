"""Installs what the settings ask for: API keys, the rate limit, CORS; each only when configured.

Order, outermost first: request context (in app.py) > CORS > API keys > rate limit > body limit > routes.
CORS answers preflights before the key check (browsers send no credentials on them) and its headers
reach 401s too; the rate limit runs after the key check so it counts per key.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from pixyproxy.entrypoints.auth import ApiKeyMiddleware, document_security, load_key_digests
from pixyproxy.entrypoints.errors import render
from pixyproxy.entrypoints.rate_limit import RateLimitMiddleware, TokenBucketLimiter, document_rate_limit
from pixyproxy.settings import Settings

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


def install_security(app: FastAPI, settings: Settings) -> None:
    """Call after the inner middleware and before the request context middleware are added."""
    keys = settings.api_keys.get_secret_value() if settings.api_keys else None
    digests = load_key_digests(keys, settings.api_keys_file)
    patches: list[Callable[[dict[str, Any]], None]] = []
    if settings.rate_limit_per_minute > 0:
        limiter = TokenBucketLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        app.add_middleware(RateLimitMiddleware, limiter=limiter, render=render)
        patches.append(document_rate_limit)
    if digests:
        app.add_middleware(ApiKeyMiddleware, digests=digests, render=render)
        patches.append(document_security)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=600,
        )
    if patches:
        _patch_openapi(app, patches)


def _patch_openapi(app: FastAPI, patches: list[Callable[[dict[str, Any]], None]]) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for patch in patches:
                patch(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""Changes to the generated OpenAPI document for what middleware adds (API keys, the rate limit)."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

SchemaPatch = Callable[[dict[str, Any]], None]


def patch_openapi(app: FastAPI, patches: list[SchemaPatch]) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for patch in patches:
                patch(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

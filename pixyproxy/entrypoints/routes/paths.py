"""Every path with and without its trailing slash, answered directly: clients do not follow redirects."""

from collections.abc import Callable

from fastapi import APIRouter


def twin_routes(router: APIRouter, methods: list[str], path: str, **options) -> Callable:
    """Register `path` and its twin (slash added or removed); only `path` appears in the OpenAPI document.
    One route per method, so each operation gets its own operationId."""

    def register(endpoint: Callable) -> Callable:
        twin = path.rstrip("/") if path.endswith("/") else path + "/"
        hidden = {**options, "include_in_schema": False}
        for method in methods:
            router.add_api_route(path, endpoint, methods=[method], **options)
            router.add_api_route(twin, endpoint, methods=[method], **hidden)
        return endpoint

    return register

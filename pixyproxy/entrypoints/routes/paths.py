"""Every path with and without its trailing slash, answered directly: clients do not follow redirects.
And the `{guid:image_guid}` parameter of image paths."""

from collections.abc import Callable

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor


class ImageGuidConvertor(Convertor):
    """Any path segment but `jobs`, which names the jobs routes: so the image routes (the hottest reads)
    can come first in the router without taking `/image/jobs`. Malformed guids still reach the route,
    which answers image_not_found."""

    regex = "(?!jobs(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: object) -> str:
        return str(value)


register_url_convertor("image_guid", ImageGuidConvertor())


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

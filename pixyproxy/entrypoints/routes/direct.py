"""A route for the hottest reads: documented from its endpoint's signature like any FastAPI route, but
called without FastAPI's per-request machinery (dependency solving, two exit stacks per request).

The endpoint takes the Request and the path parameters (strings) and returns a Response; it finds its
use case through `dependencies.services(request)`. The machinery it skips was about a third of a detail
read's time in process.
"""

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import request_response


class DirectRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Awaitable[Response]], **options) -> None:
        super().__init__(path, endpoint, **options)

        async def handler(request: Request) -> Response:
            return await endpoint(request, **request.path_params)

        # Starlette's own wrapper: raised errors still reach the app's exception handlers.
        self.app = request_response(handler)

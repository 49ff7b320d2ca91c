"""The two reads that carry most traffic, answered without FastAPI's routing, dependency solving and
response-model validation: `GET /image/{guid}` and `GET|HEAD /image/{guid}/content` (and their twins with
a trailing slash).

The profile of `GET /image/{guid}` under load (bench/, figure 1) showed most of the time in FastAPI's
request machinery around a handler that does one lookup; figure 2 showed StreamingResponse's per-request
task group around a 200 KB body that fits in one read. These answers are the FastAPI routes' own
(routes.py), the same status, headers and bytes: tests/e2e/test_hot_paths.py compares the two on every case.
The routes stay registered for the OpenAPI document and for what this does not take (other methods).

It sits innermost, inside every other middleware (request id and log lines, API keys, rate limit, metrics),
and sets scope["route"] like the router does, so those see the same request either way.
"""

import asyncio
from collections.abc import Callable

from pydantic import TypeAdapter
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException

from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.models import ImageDetail
from pixyproxy.domain.service import ImageService
from pixyproxy.entrypoints.content_answer import answer_content
from pixyproxy.entrypoints.errors import render
from pixyproxy.entrypoints.metrics import flatten_routes

ONE_BODY = 1024 * 1024  # blobs up to this size are read whole and sent as one body
_JSON_HEADERS = (b"content-type", b"application/json")
_CONDITIONAL = (b"if-none-match", b"if-range", b"range")


class HotPathMiddleware:
    def __init__(self, app, service: Callable[[], ImageService]) -> None:
        self.app = app
        self.service = service
        self.dump = TypeAdapter(ImageDetail).dump_json  # how FastAPI serialises the response model
        self._routes: dict[str, object] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = get_route_path(scope)
            if path.startswith("/image/"):
                parts = path[7:].split("/")
                if parts[0] and len(parts) <= 3:
                    twin = parts[-1] == "" and len(parts) > 1
                    if twin:
                        parts.pop()
                    if len(parts) == 1 and scope["method"] == "GET":
                        self._set_route(scope, "/image/{guid}" + "/" * twin, "GET", parts[0])
                        await self._detail(parts[0], send)
                        return
                    if len(parts) == 2 and parts[1] == "content":
                        method = scope["method"]
                        self._set_route(scope, "/image/{guid}/content" + "/" * twin, method, parts[0])
                        await self._content(parts[0], scope, receive, send)
                        return
        await self.app(scope, receive, send)

    def _set_route(self, scope, template: str, method: str, guid: str) -> None:
        """What the router would put in the scope, for middleware that reads it (e.g. metrics labels)."""
        if self._routes is None:
            app = scope.get("app")
            self._routes = {}
            for route in flatten_routes(getattr(getattr(app, "router", None), "routes", ())):
                for route_method in getattr(route, "methods", None) or ():
                    self._routes.setdefault(f"{route_method} {getattr(route, 'path', '')}", route)
        route = self._routes.get(f"{method} {template}")
        if route is not None:
            scope["route"] = route
            scope["endpoint"] = getattr(route, "endpoint", None)
        scope["path_params"] = {"guid": guid}

    async def _detail(self, guid: str, send) -> None:
        try:
            detail = await self.service().get(guid)
        except (ImageException, HTTPException) as exc:
            await _send_error(exc, send)
            return
        body = self.dump(detail)
        headers = [(b"content-length", str(len(body)).encode()), _JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _content(self, guid: str, scope, receive, send) -> None:
        service = self.service()
        try:
            detail = await service.get(guid)
            wanted: dict[bytes, str] = {}
            for name, value in scope["headers"]:
                if name in _CONDITIONAL:
                    wanted[name] = value.decode("latin-1")
            answer = answer_content(
                detail,
                scope["method"],
                wanted.get(b"if-none-match"),
                wanted.get(b"if-range"),
                wanted.get(b"range"),
            )
            if not answer.send_body:
                await send(
                    {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
                )
                await send({"type": "http.response.body", "body": b""})
                return
            stream = await service.open_content(detail, answer.byte_range)
        except (ImageException, HTTPException) as exc:
            await _send_error(exc, send)
            return
        status, headers = answer.status, answer.headers
        length = answer.byte_range.length if answer.byte_range else detail.size_bytes
        chunks = stream.chunks()
        if length <= ONE_BODY:  # one read, one body: no per-chunk sends for the common small image
            try:
                body = b"".join([chunk async for chunk in chunks])
            except ImageException as exc:  # nothing sent yet: a proper error instead of a cut body
                await _send_error(exc, send)
                return
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        # A large blob streams chunk by chunk; the server holds back a send while the client's buffer is
        # full, so memory stays at a few chunks per download. Stop reading once the client has gone.
        disconnected = asyncio.ensure_future(_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            async for chunk in chunks:
                if disconnected.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            disconnected.cancel()
            await chunks.aclose()  # type: ignore[attr-defined] (an async generator)


async def _send_error(exc: Exception, send) -> None:
    status, headers, body = render(exc)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

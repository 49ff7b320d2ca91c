"""A span for each request, when traces are on: named by method and route template, with the request id
(inside the request-log middleware, which sets it), the status, and the caller's `traceparent` honoured.

Pure ASGI and installed only when a tracer is configured: with traces off, requests pay nothing."""

from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from pixyproxy.entrypoints.request_id import request_id_var
from pixyproxy.entrypoints.route_match import template


class TracingMiddleware:
    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        attributes = {
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "pixyproxy.request_id": request_id_var.get(),
        }
        with self.tracer.start_as_current_span(
            scope["method"], context=propagate.extract(headers), kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def send_with_status(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = scope.get("route")
                if route is not None:  # the template /metrics labels by, so a trace and a series match
                    label = template(route)
                    span.set_attribute("http.route", label)
                    span.update_name(f"{scope['method']} {label}")

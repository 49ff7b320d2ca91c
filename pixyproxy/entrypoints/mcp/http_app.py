"""/mcp in the app: the SDK's streamable-HTTP session manager behind the app's own middleware, so MCP
requests get the same API keys, request log lines, metrics and error answers as every route; the rate
limit and budgets apply to the generating tools (calls.py).

The session manager runs inside the app's lifespan (McpEndpoint.running)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pixyproxy.container import Container
from pixyproxy.entrypoints.jsonrpc_errors import MCP_PATHS, jsonrpc_error
from pixyproxy.entrypoints.mcp.calls import InProcessTools
from pixyproxy.entrypoints.mcp.security import refusal, security_settings
from pixyproxy.entrypoints.mcp.server import build_server
from pixyproxy.entrypoints.middleware.api_keys import CALLER_SCOPE_KEY, CLIENT_SCOPE_KEY
from pixyproxy.entrypoints.request_id import request_id_var


class McpEndpoint:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.server = build_server(self._tools_for)
        # Stateful sessions: a client's cancellation (a second POST) reaches the call it cancels.
        self.sessions = StreamableHTTPSessionManager(app=self.server, max_request_body_size=1 << 62)
        # A request naming a session this process does not hold (another worker or replica opened it, or
        # it ended) is served on its own, as every request of protocol 2026-07-28 is: no sticky routing.
        self.unbound = StreamableHTTPSessionManager(
            app=self.server, max_request_body_size=1 << 62, stateless=True
        )
        self.routes = [Route(path, endpoint=self) for path in sorted(MCP_PATHS)]
        settings = container.settings()
        self.security = security_settings(
            settings.mcp_allowed_host_list,
            settings.mcp_allowed_origin_list,
            settings.cors_origin_list,
            settings.host,
        )

    def _tools_for(self, ctx: ServerRequestContext[Any, Any]) -> InProcessTools:
        """The tools as the HTTP request that carried this message may use them: its key's caller."""
        request = ctx.request
        if not isinstance(request, Request):  # every message at /mcp comes in an HTTP request
            raise RuntimeError("an MCP request without its HTTP request")
        scope = request.scope
        client = scope.get(CLIENT_SCOPE_KEY) or f"addr:{(scope.get('client') or ('-',))[0]}"
        return InProcessTools(self.container, scope.get(CALLER_SCOPE_KEY), client, str(request.base_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = refusal(scope, self.security)
        if refused is not None:
            body = jsonrpc_error(refused.status, refused.code, refused.detail, request_id_var.get())
            headers = {"X-Content-Type-Options": "nosniff"}
            answer = Response(orjson.dumps(body), refused.status, headers, media_type="application/json")
            await answer(scope, receive, send)
            return
        caller = scope.get(CALLER_SCOPE_KEY)
        if caller is not None:
            # The SDK binds a session to the principal that opened it: another key presenting its id is
            # answered as if the session did not exist. Named by the key's name, never the key.
            identity = AccessToken(token="", client_id=f"key:{caller.name}", scopes=[])
            scope["user"] = AuthenticatedUser(identity)
        await self._manager_for(scope).handle_request(scope, receive, send)

    def _manager_for(self, scope: Scope) -> StreamableHTTPSessionManager:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        held = self.sessions._server_instances  # the SDK keeps no public view of its sessions
        return self.unbound if session_id is not None and session_id not in held else self.sessions

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session managers, run in a task of their own: its task group must be left by the task that
        entered it, and a lifespan may be started and stopped by different tasks (test fixtures)."""
        ready, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.sessions.run(), self.unbound.run():
                ready.set()
                await stop.wait()

        task = asyncio.create_task(serve(), name="mcp-sessions")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # it failed to start: raise why
        try:
            yield
        finally:
            stop.set()
            await task

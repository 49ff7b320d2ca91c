"""`pixyproxy mcp`: the MCP tools over stdio for desktop clients that start a local process, each call
forwarded to a running PixyProxy through the HTTP client. Needs `mcp` but no server library."""

import logging

from mcp.server.stdio import stdio_server

from pixyproxy.client import AsyncPixyProxyClient
from pixyproxy.entrypoints.mcp.remote import RemoteTools
from pixyproxy.entrypoints.mcp.server import build_server


async def serve_stdio(url: str, api_key: str | None = None) -> None:
    """Serve until the client closes stdin. The key defaults to $PIXYPROXY_API_KEY (the client's)."""
    # stdout carries the protocol: anything logged goes to stderr, and only warnings and worse.
    logging.basicConfig(level=logging.WARNING)
    async with AsyncPixyProxyClient(url, api_key=api_key) as client:
        tools = RemoteTools(client)
        server = build_server(lambda ctx: tools)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

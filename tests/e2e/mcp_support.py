"""The official MCP client against a PixyProxy: a ClientSession over streamable HTTP (with an API key) or
over stdio against `pixyproxy mcp`, and what the tests check of an image result."""

import base64
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from PIL import Image

# For tests that speak JSON-RPC over HTTP themselves: what every POST to /mcp accepts, and a session's
# opening message.
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
OPENING = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@contextlib.asynccontextmanager
async def http_session(
    base_url: str, key: str | None = None, http_client: httpx2.AsyncClient | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized session; over `http_client` when given (which then carries the key itself)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with contextlib.AsyncExitStack() as stack:
        http = http_client or await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=60))
        read, write = await stack.enter_async_context(
            streamable_http_client(f"{base_url}/mcp", http_client=http)
        )
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def stdio_session(base_url: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXYPROXY_")}
    if key:
        env["PIXYPROXY_API_KEY"] = key
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "pixyproxy.entrypoints.cli", "mcp", "--url", base_url], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent), result
    return first.text


def webp_side(block: ImageContent) -> tuple[int, int]:
    """The size of an image content block, checked to be WebP."""
    assert block.mime_type == "image/webp"
    with Image.open(io.BytesIO(base64.b64decode(block.data))) as image:
        assert image.format == "WEBP"
        return image.size


def image_parts(result: CallToolResult) -> tuple[dict, ImageContent, ResourceLink]:
    """The structured details, the preview and the link of a tool result that returns an image."""
    assert not result.is_error, result.content
    _, preview, link = result.content
    assert isinstance(preview, ImageContent) and isinstance(link, ResourceLink)
    assert isinstance(result.structured_content, dict)
    return result.structured_content, preview, link

"""The MCP server (the SDK's low-level Server): tools and `image://{guid}` resources over whatever
ImageTools a request is served by. The same server runs at /mcp and over stdio."""

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from pixyproxy import __version__
from pixyproxy.entrypoints.mcp import tools as t
from pixyproxy.entrypoints.mcp.backend import ImageTools, ReportProgress
from pixyproxy.entrypoints.mcp.previews import KEEP_SECONDS, PREVIEW_URI, Preview, PreviewStore

log = logging.getLogger(__name__)

RESOURCE_NOT_FOUND = -32002  # the code the specification gives an unknown resource
RESOURCE_PAGE = 50
IMAGE_URI = "image://"
WEBP = "image/webp"
INSTRUCTIONS = (
    "PixyProxy generates images from prompts and stores them. generate_image and edit_image make "
    "images; get_image, search_images and the image://{guid} resources read them back."
)
UNEXPECTED = "An unexpected error occurred; the server's log has the details."

ToolsFor = Callable[[ServerRequestContext[Any, Any]], ImageTools]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _failed(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _progress_of(
    ctx: ServerRequestContext[Any, Any], previews: PreviewStore, owner: str | None
) -> ReportProgress | None:
    """The client's progress reporter when it asked for progress (sent a progress token). A streamed
    preview is kept for `owner` and its URI named in the message."""
    if not ctx.meta or ctx.meta.get("progress_token") is None:
        return None
    session = ctx.session

    async def report(
        progress: float, total: float | None, message: str | None, preview: Preview | None = None
    ) -> None:
        if preview is not None:
            message = f"{message}: {previews.put(owner, preview)}"
        await session.report_progress(progress, total, message)

    return report


async def _image_result(images: ImageTools, detail: dict[str, Any]) -> types.CallToolResult:
    """Details as structured content (and as text, for clients that read only text), the image as a
    WebP preview, and a link to the full image."""
    # The preview (an encode in a worker thread, or a request over stdio) is made while the link is (a
    # presign on S3).
    making = asyncio.ensure_future(images.preview(detail, t.PREVIEW_WIDTH))
    try:
        link = await images.link(detail)
    except BaseException:
        making.cancel()
        await asyncio.wait({making})
        if not making.cancelled():
            making.exception()  # it failed on its own too: the link's error is the one to tell
        raise
    preview = await making
    return types.CallToolResult(
        content=[
            types.TextContent(text=_json(detail)),
            types.ImageContent(data=base64.b64encode(preview).decode(), mime_type=WEBP),
            types.ResourceLink(
                uri=link,
                name=str(detail["filename"]),
                title=str(detail["prompt"])[:100],
                mime_type=str(detail["content_type"]),
                size=int(detail["size_bytes"]),
            ),
        ],
        structured_content=detail,
    )


async def _search_result(images: ImageTools, found: list[dict[str, Any]]) -> types.CallToolResult:
    content: list[types.ContentBlock] = [types.TextContent(text=_json({"images": found}))]
    for detail in found:
        thumbnail = await images.preview(detail, t.THUMBNAIL_WIDTH)
        content.append(types.ImageContent(data=base64.b64encode(thumbnail).decode(), mime_type=WEBP))
    return types.CallToolResult(content=content, structured_content={"images": found})


def _structured(value: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=_json(value))], structured_content=value)


async def call(
    images: ImageTools, name: str, arguments: dict[str, Any], progress: ReportProgress | None
) -> types.CallToolResult:
    """One tool call, its arguments already checked by name."""
    if name == t.GENERATE:
        if arguments.get("partial_images") and progress is None:
            raise t.ToolFailure(t.PREVIEWS_NEED_PROGRESS)
        return await _image_result(images, await images.generate(arguments, progress))
    if name == t.EDIT:
        guid = arguments.pop("guid")
        return await _image_result(images, await images.edit(guid, arguments))
    if name == t.GET:
        return await _image_result(images, await images.get(arguments["guid"]))
    if name == t.SEARCH:
        return await _search_result(images, await images.search(arguments))
    if name == t.MODELS:
        return _structured({"models": await images.models()})
    if name == t.DELETE:
        await images.delete(arguments["guid"])
        return _structured({"guid": arguments["guid"], "deleted": True})
    if name == t.USAGE:
        return _structured(await images.usage(arguments.get("since"), arguments.get("until")))
    raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")


def _guid_of(uri: str) -> str:
    if not uri.startswith(IMAGE_URI):
        raise MCPError(RESOURCE_NOT_FOUND, "Resource not found: PixyProxy serves image://{guid}", uri[:200])
    return uri[len(IMAGE_URI) :]


def _streamed(preview: Preview | None, uri: str) -> types.ReadResourceResult:
    if preview is None:
        message = "Resource not found: a preview is kept a few minutes, by the process that made it"
        raise MCPError(RESOURCE_NOT_FOUND, message, uri[:200])
    data = base64.b64encode(preview.data).decode()
    blob = types.BlobResourceContents(uri=uri, mime_type=preview.mime_type, blob=data)
    return types.ReadResourceResult(contents=[blob])


def build_server(tools_for: ToolsFor) -> Server[Any]:
    """The server; `tools_for` gives the ImageTools that serve a request (its caller's)."""
    previews = PreviewStore()

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=t.TOOLS)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = t.BY_NAME.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name[:100]}")
        try:
            arguments = t.check_arguments(tool, params.arguments)
            images = tools_for(ctx)
            return await call(images, tool.name, arguments, _progress_of(ctx, previews, images.owner))
        except t.ToolFailure as exc:
            return _failed(exc.message)
        except MCPError:
            raise
        except Exception:
            log.exception("MCP tool %s failed unexpectedly", tool.name)
            return _failed(UNEXPECTED)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        cursor = params.cursor if params is not None else None
        try:
            page, next_cursor = await tools_for(ctx).page(cursor, RESOURCE_PAGE)
        except t.ToolFailure as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        resources = [
            types.Resource(
                uri=f"{IMAGE_URI}{detail['guid']}",
                name=str(detail["filename"]),
                title=str(detail["prompt"])[:100],
                mime_type=str(detail["content_type"]),
                size=int(detail["size_bytes"]),
            )
            for detail in page
        ]
        return types.ListResourcesResult(resources=resources, next_cursor=next_cursor)

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=IMAGE_URI + "{guid}",
            name="image",
            title="A stored image",
            description="The image's bytes, in the format it was made in.",
        )
        streamed = types.ResourceTemplate(
            uri_template=PREVIEW_URI + "{job}/{index}",
            name="preview",
            title="A streamed preview",
            description="A preview a generation streamed (partial_images), named in its progress "
            f"notification: a WebP of at most {t.PREVIEW_WIDTH} px, kept {KEEP_SECONDS / 60:.0f} minutes.",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template, streamed])

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        if params.uri.startswith(PREVIEW_URI):
            return _streamed(previews.get(tools_for(ctx).owner, params.uri), params.uri)
        guid = _guid_of(params.uri)
        try:
            data, mime_type = await tools_for(ctx).content(guid)
        except t.ToolFailure as exc:
            raise MCPError(RESOURCE_NOT_FOUND, exc.message, params.uri[:200]) from None
        blob = types.BlobResourceContents(
            uri=params.uri, mime_type=mime_type, blob=base64.b64encode(data).decode()
        )
        return types.ReadResourceResult(contents=[blob])

    return Server(
        "pixyproxy",
        version=__version__,
        title="PixyProxy",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )

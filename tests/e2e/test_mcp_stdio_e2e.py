"""`pixyproxy mcp` (stdio) with the official client (ClientSession over stdio_client), forwarding to the
real service: the same tools and schemas as /mcp, every tool, progress, cancellation, bad input with the
HTTP API's message, a refused key and tenancy."""

import asyncio
import base64
import io

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import ImageContent
from PIL import Image

from tests.e2e.mcp_support import http_session, image_parts, stdio_session, text_of, webp_side
from tests.e2e.server import run_server

KEYS = {"ann": "ann-stdio-key-0001", "bob": "bob-stdio-key-0002"}
ENV = {
    "PIXYPROXY_API_KEYS": ",".join(f"{name}:user:{key}" for name, key in KEYS.items()),
    "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("mcp-stdio"), ENV) as running:
        yield running


def http_for(server, name: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS[name]}"})


async def test_the_same_tools_as_the_http_endpoint(server):
    async with stdio_session(server.base_url, KEYS["ann"]) as stdio:
        over_stdio = (await stdio.list_tools()).tools
    async with http_session(server.base_url, KEYS["ann"]) as http:
        over_http = (await http.list_tools()).tools
    assert [tool.model_dump() for tool in over_stdio] == [tool.model_dump() for tool in over_http]


async def test_every_tool_forwarded_to_the_server(server):
    http = http_for(server, "ann")
    async with stdio_session(server.base_url, KEYS["ann"]) as session:
        detail, preview, link = image_parts(
            await session.call_tool("generate_image", {"prompt": "a stdio owl"})
        )
        assert detail == http.get(f"/image/{detail['guid']}").json()
        assert max(webp_side(preview)) <= 512
        assert link.uri == f"{server.base_url}/image/{detail['guid']}/content"
        assert image_parts(await session.call_tool("get_image", {"guid": detail["guid"]}))[0] == detail
        tall = await session.call_tool("generate_image", {"prompt": "a tall tower", "size": "512x1024"})
        assert webp_side(image_parts(tall)[1]) == (256, 512)
        arguments = {"guid": detail["guid"], "prompt": "a stdio owl at night"}
        edited = image_parts(await session.call_tool("edit_image", arguments))[0]
        assert edited["parent_guid"] == detail["guid"]
        found = await session.call_tool("search_images", {"q": "stdio owl"})
        assert [i["guid"] for i in found.structured_content["images"]] == [edited["guid"], detail["guid"]]
        assert sum(isinstance(block, ImageContent) for block in found.content) == 2
        models = await session.call_tool("list_models", {})
        assert models.structured_content == {"models": [{"id": "pixyproxy-offline", "default": True}]}
        usage = await session.call_tool("get_usage", {"since": "2020-01-01"})
        assert [line["key"] for line in usage.structured_content["keys"]] == ["ann"]
        read = await session.read_resource(f"image://{detail['guid']}")
        assert base64.b64decode(read.contents[0].blob) == http.get(link.uri).content
        listed = await session.list_resources()
        assert str(listed.resources[0].uri) == f"image://{edited['guid']}"
        deleted = await session.call_tool("delete_image", {"guid": edited["guid"]})
        assert deleted.structured_content == {"guid": edited["guid"], "deleted": True}
        assert http.get(f"/image/{edited['guid']}").status_code == 404


async def test_progress_and_a_cancelled_call(server):
    http = http_for(server, "bob")
    reports: list[str] = []
    running = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append(message or "")
        if (message or "").endswith(" running"):
            running.set()

    async with stdio_session(server.base_url, KEYS["bob"]) as session:
        result = await session.call_tool(
            "generate_image", {"prompt": "progress"}, progress_callback=on_progress
        )
        assert not result.is_error and reports[-1].endswith(" succeeded")
        reports.clear()
        running.clear()
        async with anyio.create_task_group() as group:

            async def call() -> None:
                arguments = {"prompt": "cancelled"}
                await session.call_tool("generate_image", arguments, progress_callback=on_progress)

            group.start_soon(call)
            await running.wait()
            group.cancel_scope.cancel()
        job_id = reports[-1].split()[1]
        deadline = anyio.current_time() + 10
        job = http.get(f"/image/jobs/{job_id}").json()
        while job["status"] in ("queued", "running") and anyio.current_time() < deadline:
            await anyio.sleep(0.05)  # polled: the stdio process cancels it over HTTP
            job = http.get(f"/image/jobs/{job_id}").json()
        assert job["status"] == "canceled" and job["images"] == []
    assert [image["prompt"] for image in http.get("/image/").json()] == ["progress"]


async def test_streamed_previews_read_as_images(server):
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with stdio_session(server.base_url, KEYS["bob"]) as session:
        arguments = {"prompt": "a streamed stdio kite", "partial_images": 1, "output_format": "webp"}
        result = await session.call_tool("generate_image", arguments, progress_callback=on_progress)
        assert not result.is_error, result.content
        (uri,) = [m.rsplit(": ", 1)[1] for m in messages if " preview 1 received: " in m]
        (contents,) = (await session.read_resource(uri)).contents
        assert contents.mime_type == "image/webp"  # as the server streamed it
        with Image.open(io.BytesIO(base64.b64decode(contents.blob))) as image:
            assert image.format == "WEBP"


async def test_bad_input_missing_key_and_tenancy(server):
    ann = http_for(server, "ann")
    guid = ann.post("/image/", json={"prompt": "ann's stdio secret"}).json()["guid"]
    answer = ann.post("/image/", json={"prompt": "x", "size": "1x1"})
    async with stdio_session(server.base_url, KEYS["bob"]) as session:
        result = await session.call_tool("generate_image", {"prompt": "x", "size": "1x1"})
        assert result.is_error and text_of(result) == answer.json()["detail"]
        result = await session.call_tool("get_image", {"guid": guid})
        assert result.is_error and text_of(result) == "No image has that guid."
        with pytest.raises(MCPError, match="No image has that guid"):
            await session.read_resource(f"image://{guid}")
        with pytest.raises(MCPError, match="Unknown tool"):
            await session.call_tool("draw", {})
    async with stdio_session(server.base_url) as session:
        for tool in ("list_models", "get_usage"):
            result = await session.call_tool(tool, {})
            assert result.is_error and text_of(result).startswith("a valid API key is required"), tool

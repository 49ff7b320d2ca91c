"""The MCP tools on the production stack: MySQL metadata, S3 bytes (the link presigned) and the fake
OpenAI server (previews streamed into progress), with two keys kept apart."""

from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from mcp.types import ImageContent

from tests.e2e.mcp_support import http_session, image_parts, text_of, webp_side
from tests.e2e.server import run_server
from tests.e2e.test_openai_e2e import openai_env
from tests.support.s3 import empty_and_remove_bucket

KEYS = {"ann": "ann-prod-mcp-key-1", "bob": "bob-prod-mcp-key-2"}


@pytest.mark.mysql
@pytest.mark.s3
async def test_every_tool_on_mysql_s3_and_openai(tmp_path, mysql_url, s3_endpoint, fake_openai):
    bucket = f"pixyproxy-mcp-{uuid4().hex[:16]}"
    env = {
        **openai_env(fake_openai),
        **s3_endpoint.env(),
        "PIXYPROXY_DATABASE_URL": mysql_url,
        "PIXYPROXY_STORAGE_URL": f"s3://{bucket}/mcp",
        "PIXYPROXY_API_KEYS": ",".join(f"{name}:user:{key}" for name, key in KEYS.items()),
    }
    try:
        with run_server(tmp_path, env) as server:
            ann = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS['ann']}"})
            async with http_session(server.base_url, KEYS["ann"]) as session:
                made = await session.call_tool(
                    "generate_image", {"prompt": "a heron on s3", "quality": "low"}
                )
                detail, preview, link = image_parts(made)
                assert max(webp_side(preview)) <= 512
                assert "X-Amz-Signature" in parse_qs(urlsplit(link.uri).query)  # presigned on S3
                content = ann.get(f"/image/{detail['guid']}/content").content
                assert httpx.get(link.uri, timeout=30).content == content

                messages: list[str] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    messages.append(message or "")

                arguments = {"prompt": "a heron in steps", "partial_images": 2}
                streamed = await session.call_tool("generate_image", arguments, progress_callback=on_progress)
                assert not streamed.is_error, streamed.content
                assert sum("preview" in message for message in messages) == 2, messages

                arguments = {"guid": detail["guid"], "prompt": "a heron on s3 at night"}
                edited = image_parts(await session.call_tool("edit_image", arguments))[0]
                assert edited["parent_guid"] == detail["guid"]
                found = await session.call_tool("search_images", {"q": "heron", "limit": 2})
                newest = found.structured_content["images"][0]
                assert newest["guid"] == edited["guid"]
                assert sum(isinstance(block, ImageContent) for block in found.content) == 2
                models = await session.call_tool("list_models", {})
                assert models.structured_content["models"][0]["default"] is True
                usage = await session.call_tool("get_usage", {})
                assert usage.structured_content["keys"][0]["images"] == 3
                read = await session.read_resource(f"image://{detail['guid']}")
                assert read.contents[0].mime_type == detail["content_type"]

            async with http_session(server.base_url, KEYS["bob"]) as session:
                stolen = await session.call_tool("get_image", {"guid": detail["guid"]})
                assert stolen.is_error and text_of(stolen) == "No image has that guid."
                assert (await session.list_resources()).resources == []

            async with http_session(server.base_url, KEYS["ann"]) as session:
                deleted = await session.call_tool("delete_image", {"guid": edited["guid"]})
                assert not deleted.is_error
            assert ann.get(f"/image/{edited['guid']}").status_code == 404
    finally:
        empty_and_remove_bucket(s3_endpoint, bucket)

"""The MCP endpoint at /mcp with the official client (ClientSession over streamable HTTP) against the real
service on the embedded default: the tool list and schemas, every tool, resources, progress of a job, a
cancelled call, API keys and tenancy, rate limits and budgets, bad input, log lines and metrics."""

import asyncio
import base64
import hashlib
import re

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import ImageContent

from pixyproxy.domain.jobs_models import JobRequest
from pixyproxy.domain.models import EditRequest, ImageDetail
from tests.e2e.mcp_support import ACCEPT, OPENING, http_session, image_parts, text_of, webp_side
from tests.e2e.server import run_server
from tests.e2e.test_jobs_e2e import wait_for
from tests.e2e.test_openai_e2e import openai_env

KEYS = {"ann": "ann-mcp-key-0001", "bob": "bob-mcp-key-0002"}
SCRAPE_KEY = "mcp-scrape-key-0003"  # /metrics shows every key's usage: a user key may not read it
ENV = {
    "PIXYPROXY_API_KEYS": ",".join(f"{name}:user:{key}" for name, key in KEYS.items()),
    "PIXYPROXY_METRICS_KEY": SCRAPE_KEY,
}
MISSING = "00000000-0000-4000-8000-000000000000"
TOOLS = {
    "generate_image",
    "edit_image",
    "get_image",
    "search_images",
    "list_models",
    "delete_image",
    "get_usage",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("mcp"), ENV) as running:
        yield running


def http_for(server, name: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS[name]}"})


async def test_tool_list_and_schemas_come_from_the_api_models(server):
    async with http_session(server.base_url, KEYS["ann"]) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    generate = tools["generate_image"]
    expected = set(JobRequest.model_json_schema()["properties"]) - {"n", "webhook_url"}
    assert set(generate.input_schema["properties"]) == expected
    assert generate.input_schema["required"] == ["prompt"]
    assert generate.input_schema["additionalProperties"] is False
    assert generate.output_schema == ImageDetail.model_json_schema(mode="serialization")
    edit = tools["edit_image"]
    assert set(edit.input_schema["properties"]) == {"guid"} | set(
        EditRequest.model_json_schema()["properties"]
    ) - {"n", "moderation"}
    assert edit.input_schema["required"] == ["guid", "prompt"]
    assert tools["delete_image"].annotations.destructive_hint is True
    for name in ("get_image", "search_images", "list_models", "get_usage"):
        assert tools[name].annotations.read_only_hint is True, name
    assert all(tool.output_schema and tool.output_schema["type"] == "object" for tool in tools.values())


async def test_every_tool_on_the_embedded_default(server):
    http = http_for(server, "ann")
    async with http_session(server.base_url, KEYS["ann"]) as session:
        made = await session.call_tool("generate_image", {"prompt": "an mcp lighthouse", "size": "1024x1024"})
        detail, preview, link = image_parts(made)
        assert detail == http.get(f"/image/{detail['guid']}").json()
        assert max(webp_side(preview)) <= 512
        original = http.get(link.uri)  # the content URL on local files
        assert link.uri == f"{server.base_url}/image/{detail['guid']}/content"
        assert hashlib.sha256(original.content).hexdigest() == detail["sha256"]
        assert link.mime_type == "image/png" and link.size == detail["size_bytes"]

        tall = await session.call_tool("generate_image", {"prompt": "a tall mcp tower", "size": "512x1024"})
        assert webp_side(image_parts(tall)[1]) == (256, 512)  # the longest side at most 512 px

        fetched = image_parts(await session.call_tool("get_image", {"guid": detail["guid"]}))[0]
        assert fetched == detail

        arguments = {"guid": detail["guid"], "prompt": "a blue lighthouse"}
        edited = await session.call_tool("edit_image", arguments)
        edit_detail = image_parts(edited)[0]
        assert edit_detail["parent_guid"] == detail["guid"]

        found = await session.call_tool("search_images", {"q": "lighthouse", "limit": 5})
        assert not found.is_error, found.content
        images = found.structured_content["images"]
        assert [image["guid"] for image in images] == [edit_detail["guid"], detail["guid"]]
        thumbnails = [block for block in found.content if isinstance(block, ImageContent)]
        assert len(thumbnails) == 2 and all(max(webp_side(t)) <= 128 for t in thumbnails)

        models = await session.call_tool("list_models", {})
        assert models.structured_content == {"models": [{"id": "pixyproxy-offline", "default": True}]}

        usage = await session.call_tool("get_usage", {})
        assert usage.structured_content["keys"][0]["key"] == "ann"
        assert usage.structured_content == http.get("/usage").json() | {
            "until": usage.structured_content["until"]
        }

        deleted = await session.call_tool("delete_image", {"guid": edit_detail["guid"]})
        assert deleted.structured_content == {"guid": edit_detail["guid"], "deleted": True}
        assert http.get(f"/image/{edit_detail['guid']}").status_code == 404
        gone = await session.call_tool("get_image", {"guid": edit_detail["guid"]})
        assert gone.is_error and text_of(gone) == "No image has that guid."


async def test_resources_serve_the_bytes_and_page_newest_first(server):
    http = http_for(server, "bob")
    made = [http.post("/image/", json={"prompt": f"resource fox {i}"}).json() for i in range(52)]
    async with http_session(server.base_url, KEYS["bob"]) as session:
        first = await session.list_resources()
        assert len(first.resources) == 50 and first.next_cursor
        rest = await session.list_resources(params={"cursor": first.next_cursor})
        assert rest.next_cursor is None
        listed = [str(r.uri) for r in [*first.resources, *rest.resources]]
        assert listed == [f"image://{image['guid']}" for image in reversed(made)]
        read = await session.read_resource(f"image://{made[0]['guid']}")
        (contents,) = read.contents
        assert contents.mime_type == "image/png"
        assert base64.b64decode(contents.blob) == http.get(f"/image/{made[0]['guid']}/content").content
        templates = await session.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == [
            "image://{guid}",
            "preview://{job}/{index}",
        ]
        with pytest.raises(MCPError, match="No image has that guid"):
            await session.read_resource(f"image://{MISSING}")


@pytest.mark.parametrize(
    "arguments",
    [
        {"prompt": ""},
        {"prompt": "a\x00b"},
        {"prompt": "x", "size": "1x1"},
        {"prompt": "x", "output_compression": 50},
        {"prompt": "x", "background": "transparent", "output_format": "jpeg"},
        {"prompt": "x", "quality": 7},
        {"prompt": "x" * 4001},
        {"prompt": "x", "model": "../../etc/passwd"},
    ],
    ids=["empty", "nul", "size", "compression-png", "jpeg-alpha", "quality-int", "too-long", "model"],
)
async def test_a_bad_argument_is_a_tool_error_with_the_http_apis_message(server, arguments):
    http = http_for(server, "ann")
    before = http.get("/image/").json()
    answer = http.post("/image/", json=arguments)
    assert answer.status_code == 422
    async with http_session(server.base_url, KEYS["ann"]) as session:
        result = await session.call_tool("generate_image", arguments)
    assert result.is_error and text_of(result) == answer.json()["detail"]
    assert http.get("/image/").json() == before


async def test_an_argument_the_tool_does_not_take_is_refused_by_name(server):
    async with http_session(server.base_url, KEYS["ann"]) as session:
        result = await session.call_tool("generate_image", {"prompt": "x", "n": 3})
        assert result.is_error and text_of(result).startswith("n: generate_image takes no such argument")
        result = await session.call_tool("get_image", {})
        assert result.is_error and text_of(result) == "guid: Field required"
        with pytest.raises(MCPError, match="Unknown tool: draw"):
            await session.call_tool("draw", {"prompt": "x"})


async def test_progress_notifications_arrive_for_a_job(server):
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with http_session(server.base_url, KEYS["ann"]) as session:
        result = await session.call_tool(
            "generate_image", {"prompt": "a job with progress"}, progress_callback=on_progress
        )
    detail = image_parts(result)[0]
    assert [r[0] for r in reports][-1] == 3 and reports[-1][1] == 3
    assert re.fullmatch(r"job \S+ succeeded", reports[-1][2] or "")
    assert any("running" in (r[2] or "") for r in reports)
    job_id = (reports[-1][2] or "").split()[1]
    job = http_for(server, "ann").get(f"/image/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["images"][0]["guid"] == detail["guid"]


async def test_streamed_previews_are_named_in_progress_and_read_as_images(server):
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    arguments = {"prompt": "a streamed kite", "size": "1024x1024", "partial_images": 2}
    async with http_session(server.base_url, KEYS["ann"]) as session:
        result = await session.call_tool("generate_image", arguments, progress_callback=on_progress)
        assert not result.is_error, result.content
        named = [re.fullmatch(r"job (\S+) running: preview (\d) received: (\S+)", m) for m in messages]
        uris = [found.group(3) for found in named if found]
        job_id = next(found.group(1) for found in named if found)
        assert uris == [f"preview://{job_id}/1", f"preview://{job_id}/2"], messages
        for uri in uris:
            (contents,) = (await session.read_resource(uri)).contents
            assert contents.mime_type == "image/webp"
            block = ImageContent(type="image", data=contents.blob, mime_type=contents.mime_type)
            assert max(webp_side(block)) == 512  # the 1024 px preview, scaled for the chat
        templates = await session.list_resource_templates()
        assert "preview://{job}/{index}" in [t.uri_template for t in templates.resource_templates]
        with pytest.raises(MCPError, match="Resource not found"):
            await session.read_resource(f"preview://{job_id}/3")
    async with http_session(server.base_url, KEYS["bob"]) as other:
        with pytest.raises(MCPError, match="Resource not found"):  # another key's preview
            await other.read_resource(uris[0])


async def test_without_a_key_the_endpoint_refuses(server):
    with pytest.raises(Exception):  # noqa: B017 (the client raises its transport's error group)
        async with http_session(server.base_url):
            pass
    with pytest.raises(Exception):  # noqa: B017
        async with http_session(server.base_url, "not-a-key"):
            pass
    raw = httpx.post(f"{server.base_url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert raw.status_code == 401 and raw.headers["www-authenticate"] == "Bearer"
    body = raw.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    assert body["error"]["data"]["code"] == "unauthorized"


async def test_one_key_never_sees_anothers_image(server):
    ann = http_for(server, "ann")
    guid = ann.post("/image/", json={"prompt": "ann's secret heron"}).json()["guid"]
    async with http_session(server.base_url, KEYS["bob"]) as session:
        for tool, arguments in [
            ("get_image", {"guid": guid}),
            ("edit_image", {"guid": guid, "prompt": "steal it"}),
            ("delete_image", {"guid": guid}),
        ]:
            result = await session.call_tool(tool, arguments)
            assert result.is_error and text_of(result) == "No image has that guid.", tool
        edit = await session.call_tool("generate_image", {"prompt": "bob's own"})
        own = image_parts(edit)[0]["guid"]
        for field in ("mask_guid", "reference_guids"):
            value = [guid] if field == "reference_guids" else guid
            result = await session.call_tool("edit_image", {"guid": own, "prompt": "x", field: value})
            assert result.is_error, field
        found = await session.call_tool("search_images", {"q": "heron"})
        assert found.structured_content == {"images": []}
        listed = []
        page = await session.list_resources()
        while True:
            listed += [str(r.uri) for r in page.resources]
            if not page.next_cursor:
                break
            page = await session.list_resources(params={"cursor": page.next_cursor})
        assert f"image://{guid}" not in listed and f"image://{own}" in listed
        with pytest.raises(MCPError, match="No image has that guid"):
            await session.read_resource(f"image://{guid}")
        usage = await session.call_tool("get_usage", {})
        assert {line["key"] for line in usage.structured_content["keys"]} == {"bob"}
    assert ann.get(f"/image/{guid}").status_code == 200


def test_a_session_is_bound_to_the_key_that_opened_it(server):
    ann = {**ACCEPT, "Authorization": f"Bearer {KEYS['ann']}"}
    opened = httpx.post(f"{server.base_url}/mcp", json=OPENING, headers=ann)
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert httpx.post(f"{server.base_url}/mcp", json=ping, headers={**ann, **session}).status_code == 200
    bob = {**ACCEPT, **session, "Authorization": f"Bearer {KEYS['bob']}"}
    taken = httpx.post(f"{server.base_url}/mcp", json=ping, headers=bob)
    assert taken.status_code == 404 and taken.json()["error"]["message"] == "Session not found"


async def test_each_http_request_logs_two_lines_and_is_counted(server):
    start = len(server.log_text())
    async with http_session(server.base_url, KEYS["ann"]) as session:
        await session.call_tool("list_models", {})

    def request_ids(kind: str) -> list[str]:
        pattern = r"INFO (\S+) .*REQUEST " + kind
        return re.findall(pattern, server.log_text()[start:], re.MULTILINE)

    # Each request's END is written once its answer has gone, the session's GET stream last: polled.
    def all_ended() -> bool:
        return sorted(request_ids("START$")) == sorted(request_ids(r"END (?:POST|GET|DELETE) /mcp \d{3} "))

    await anyio.to_thread.run_sync(wait_for, "every request's END line", all_ended)
    assert len(request_ids("START")) >= 4  # initialize, initialized, tools/call, the session's DELETE
    lines = server.log_text()[start:].splitlines()
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line]
    metrics = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_KEY}"})
    assert re.search(
        r'pixyproxy_http_requests_total\{method="POST",route="/mcp",status="200"\} \d', metrics.text
    )


async def test_rate_limit_and_budget_apply_to_the_generating_tools(tmp_path):
    env = {**ENV, "PIXYPROXY_RATE_LIMIT_PER_MINUTE": "1", "PIXYPROXY_RATE_LIMIT_BURST": "1"}
    (tmp_path / "limited").mkdir()
    (tmp_path / "budget").mkdir()
    with run_server(tmp_path / "limited", env) as limited:
        async with http_session(limited.base_url, KEYS["ann"]) as session:
            assert not (await session.call_tool("generate_image", {"prompt": "one"})).is_error
            refused = await session.call_tool("generate_image", {"prompt": "two"})
            assert refused.is_error and text_of(refused).startswith(
                "too many image requests for this API key"
            )
            assert not (await session.call_tool("list_models", {})).is_error  # reads are not limited
    env = {**ENV, "PIXYPROXY_BUDGET_IMAGES_PER_DAY": "1"}
    with run_server(tmp_path / "budget", env) as budget:
        async with http_session(budget.base_url, KEYS["ann"]) as session:
            assert not (await session.call_tool("generate_image", {"prompt": "one"})).is_error
            refused = await session.call_tool("generate_image", {"prompt": "two"})
            http = httpx.post(
                f"{budget.base_url}/image/",
                json={"prompt": "three"},
                headers={"Authorization": f"Bearer {KEYS['ann']}"},
            )
            assert http.status_code == 429
            assert refused.is_error and text_of(refused) == http.json()["detail"]


async def test_a_cancelled_call_stores_nothing(tmp_path):
    env = {**ENV, "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "3"}
    with run_server(tmp_path, env) as slow:
        running = asyncio.Event()
        job_ids: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message and message.endswith(" running"):
                job_ids.append(message.split()[1])
                running.set()

        async with http_session(slow.base_url, KEYS["ann"]) as session:
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await session.call_tool(
                        "generate_image", {"prompt": "never"}, progress_callback=on_progress
                    )

                group.start_soon(call)
                await running.wait()
                group.cancel_scope.cancel()
            # The session still works after the cancellation.
            assert not (await session.call_tool("list_models", {})).is_error
        http = httpx.Client(base_url=slow.base_url, headers={"Authorization": f"Bearer {KEYS['ann']}"})
        job = http.get(f"/image/jobs/{job_ids[0]}").json()
        deadline = anyio.current_time() + 10
        while job["status"] not in ("canceled", "succeeded", "failed") and anyio.current_time() < deadline:
            await anyio.sleep(0.05)  # polled: the cancellation reaches the server as another request
            job = http.get(f"/image/jobs/{job_ids[0]}").json()
        assert job["status"] == "canceled" and job["images"] == []
        await anyio.sleep(3.5)  # past the generator's latency: nothing is stored late either
        assert http.get("/image/").json() == []
        assert not list((tmp_path / "pixyproxy-data" / "images").glob("*.png"))


async def test_a_cancelled_call_without_progress_stops_the_provider_call(tmp_path, fake_openai):
    fake_openai.fail_next("hang")
    with run_server(tmp_path, {**ENV, **openai_env(fake_openai, timeout_seconds="30")}) as server:
        async with http_session(server.base_url, KEYS["ann"]) as session:
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await session.call_tool("generate_image", {"prompt": "never stored"})

                group.start_soon(call)
                await anyio.to_thread.run_sync(
                    wait_for, "the provider call", lambda: fake_openai.in_flight == 1
                )
                before = len(server.log_text())
                group.cancel_scope.cancel()
            # The client sends its cancellation on its own: once the server has taken it (202), a ping
            # is answered only after it, as the session's messages are read in order.
            cancelled = lambda: "REQUEST END POST /mcp 202" in server.log_text()[before:]  # noqa: E731
            await anyio.to_thread.run_sync(wait_for, "the cancellation", cancelled)
            await session.send_ping()
            fake_openai.reset()  # the hanging answer comes now; nothing may be stored from it
            assert not (await session.call_tool("list_models", {})).is_error
        http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEYS['ann']}"})
        assert http.get("/image/").json() == []
        assert all(line["images"] == 0 for line in http.get("/usage").json()["keys"])
    assert not list((tmp_path / "pixyproxy-data" / "images").glob("*"))

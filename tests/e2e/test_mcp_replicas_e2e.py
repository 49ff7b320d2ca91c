"""/mcp behind several processes with no sticky routing: two replicas on one data folder (as `serve
--workers 2` or two containers are), each request sent to the next of them in turn, as a load balancer
that knows nothing of Mcp-Session-Id does. Every tool, resource and progress notification still works,
and a call served by a process other than the one that opened the session stops when its client goes."""

import itertools
import json
import re
import time

import anyio
import httpx
import httpx2
import pytest

from tests.e2e.mcp_support import ACCEPT, OPENING, http_session, image_parts
from tests.e2e.server import run_server
from tests.e2e.test_jobs_e2e import wait_for

KEY = "replica-mcp-key-0001"
ENV = {"PIXYPROXY_API_KEYS": f"ann:user:{KEY}"}


class Alternating(httpx2.AsyncBaseTransport):
    """Each request to the next server in turn: a round-robin balancer without stickiness."""

    def __init__(self, base_urls: list[str]) -> None:
        self.ports = itertools.cycle([httpx2.URL(url).port for url in base_urls])
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=next(self.ports))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mcp-replicas")
    with run_server(workdir, ENV, timeout=60) as first, run_server(workdir, ENV, timeout=60) as second:
        yield first, second


def mcp_lines(server, status: str) -> list[str]:
    return re.findall(rf"REQUEST END \w+ /mcp {status} ", server.log_text())


async def test_a_session_works_across_replicas_without_sticky_routing(replicas):
    first, second = replicas
    reports: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append(message)

    transport = Alternating([first.base_url, second.base_url])
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, timeout=60) as http,
        http_session(first.base_url, http_client=http) as session,
    ):
        made = image_parts(await session.call_tool("generate_image", {"prompt": "a replicated heron"}))[0]
        for _ in range(3):  # on each replica at least once
            assert image_parts(await session.call_tool("get_image", {"guid": made["guid"]}))[0] == made
        found = await session.call_tool("search_images", {"q": "heron"})
        assert [image["guid"] for image in found.structured_content["images"]] == [made["guid"]]
        listed = await session.list_resources()
        assert [str(r.uri) for r in listed.resources] == [f"image://{made['guid']}"]
        read = await session.read_resource(f"image://{made['guid']}")
        assert read.contents[0].mime_type == "image/png"
        for _ in range(2):
            job = await session.call_tool(
                "generate_image", {"prompt": "a replicated job"}, progress_callback=on_progress
            )
            assert not job.is_error, job.content
    assert any(re.fullmatch(r"job \S+ succeeded", message or "") for message in reports), reports
    # Both replicas served the session's requests, and none was answered "Session not found".
    assert len(mcp_lines(first, "200")) >= 3 and len(mcp_lines(second, "200")) >= 3
    assert not mcp_lines(first, "404") and not mcp_lines(second, "404")
    for server in replicas:
        assert "Traceback" not in server.log_text() and " ERROR " not in server.log_text()


async def test_serve_with_two_workers(tmp_path):
    """`serve --workers 2`: connections are shared out by the kernel; a client that opens one per
    request (no keep-alive) reaches both workers, and every call still works."""
    with run_server(tmp_path, {**ENV, "PIXYPROXY_WORKERS": "2"}, timeout=60) as server:
        no_reuse = httpx2.Limits(max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with (
            httpx2.AsyncClient(limits=no_reuse, headers=headers, timeout=60) as http,
            http_session(server.base_url, http_client=http) as session,
        ):
            made = image_parts(await session.call_tool("generate_image", {"prompt": "two workers"}))[0]
            # The kernel may hand an idle server's connections to one worker many times running: call
            # until both have answered (a deadline, since the workers are other processes).
            deadline = time.monotonic() + 60
            while len(_workers(server.log_text())) < 2:
                assert time.monotonic() < deadline, "one worker served every request: the test proves nothing"
                assert image_parts(await session.call_tool("get_image", {"guid": made["guid"]}))[0] == made
        log = server.log_text()
        assert not mcp_lines(server, "404") and "Traceback" not in log


def _workers(log: str) -> set[str]:
    """The pids that answered /mcp: a request id is <host>-<time>-<pid>-<thread>-<n>."""
    return set(re.findall(r"INFO \S+-(\d+)-\d+-\d+ .*REQUEST END POST /mcp 200 ", log))


def _opened(server) -> str:
    answer = httpx.post(
        f"{server.base_url}/mcp", json=OPENING, headers={**ACCEPT, "Authorization": f"Bearer {KEY}"}
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


async def test_a_call_on_another_replica_stops_when_its_client_goes(tmp_path):
    """The call is served by a process that does not hold the session; the client closes the stream
    mid-generation: the job is cancelled and nothing is stored."""
    env = {**ENV, "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "3"}
    with run_server(tmp_path, env, timeout=60) as opener, run_server(tmp_path, env, timeout=60) as other:
        session_id = _opened(opener)
        headers = {
            **ACCEPT,
            "Authorization": f"Bearer {KEY}",
            "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": "2025-06-18",
        }
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "generate_image",
                "arguments": {"prompt": "never"},
                "_meta": {"progressToken": 1},
            },
        }
        job_id = None
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("POST", f"{other.base_url}/mcp", json=call, headers=headers) as answer,
        ):
            assert answer.status_code == 200
            async for line in answer.aiter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:]).get("params", {}).get("message", "")
                    if message.endswith(" running"):
                        job_id = message.split()[1]
                        break  # the client goes: the stream is closed mid-call
        assert job_id is not None
        client = httpx.Client(base_url=other.base_url, headers={"Authorization": f"Bearer {KEY}"})

        def ended() -> bool:
            return client.get(f"/image/jobs/{job_id}").json()["status"] in ("canceled", "succeeded", "failed")

        await anyio.to_thread.run_sync(wait_for, "the job's end", ended)
        job = client.get(f"/image/jobs/{job_id}").json()
        assert job["status"] == "canceled" and job["images"] == []
        assert client.get("/image/").json() == []

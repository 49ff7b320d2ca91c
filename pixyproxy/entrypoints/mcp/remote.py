"""The MCP tools served by a running PixyProxy over HTTP, through the project's client (`pixyproxy mcp`).

Details are the server's JSON as it sent it (the tools' output schema is the server's), so requests go
through the client's one retrying, error-mapping request path rather than its parsed models; jobs use
its public API. The server checks every argument: a tool's error text is the HTTP answer's `detail`.
"""

import contextlib
import json
from typing import Any

import anyio
import httpx

from pixyproxy.client import APIError, AsyncPixyProxyClient, PixyProxyError
from pixyproxy.client import _base as client_base
from pixyproxy.client.models import DoneEvent, Job, PartialImageEvent, StatusEvent
from pixyproxy.entrypoints.mcp.backend import ReportProgress
from pixyproxy.entrypoints.mcp.previews import Preview
from pixyproxy.entrypoints.mcp.tools import ToolFailure, search_limit

# The widths the server makes variants at (GET /image/{guid}/content?width=).
VARIANT_WIDTHS = (64, 128, 256, 512, 1024)
JOB_STEPS = {"queued": 1, "running": 2}
JOB_TOTAL = 3


class RemoteTools:
    def __init__(self, client: AsyncPixyProxyClient) -> None:
        self.client = client
        self.owner: str | None = None  # one client, one key: this process serves no one else

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client._send(method, path, **kwargs)
        except APIError as exc:
            raise ToolFailure(exc.detail) from None
        except PixyProxyError as exc:
            raise ToolFailure(str(exc)) from None

    async def generate(self, arguments: dict[str, Any], progress: ReportProgress | None) -> dict[str, Any]:
        if progress is not None:
            try:
                return await self._as_job(arguments, progress)
            except APIError as exc:
                raise ToolFailure(exc.detail) from None
            except PixyProxyError as exc:
                raise ToolFailure(str(exc)) from None
        key = {"Idempotency-Key": client_base.new_idempotency_key()}  # a retry never pays twice
        response = await self._send(
            "POST",
            "/image/",
            json=arguments,
            headers=key,
            timeout=self.client.generate_timeout,
            generation=True,
        )
        return dict(response.json())

    async def _as_job(self, arguments: dict[str, Any], progress: ReportProgress) -> dict[str, Any]:
        job: Job = await self.client.submit(**arguments)
        previews = 0
        try:
            stream = self.client.events(job)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if isinstance(event, StatusEvent) and event.job.status in JOB_STEPS:
                        step = JOB_STEPS[event.job.status]
                        await progress(step, JOB_TOTAL, f"job {job.id} {event.job.status}")
                    elif isinstance(event, PartialImageEvent):
                        previews += 1  # progress grows with each: 2.2, 2.4, 2.6 (at most 3 previews)
                        message = f"job {job.id} running: preview {previews} received"
                        # As the server sent it: this process decodes no images.
                        fmt = str(arguments.get("output_format") or "png")
                        shown = Preview(f"{job.id}/{previews}", event.data, f"image/{fmt}")
                        await progress(2 + previews / 5, JOB_TOTAL, message, shown)
                    elif isinstance(event, DoneEvent):
                        job = event.job
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(PixyProxyError):
                if not job.finished:
                    await self.client.cancel(job)
            raise
        if job.status != "succeeded" or not job.images:
            raise ToolFailure(job.error.detail if job.error else f"the job ended {job.status}")
        await progress(JOB_TOTAL, JOB_TOTAL, f"job {job.id} succeeded")
        return await self.get(str(job.images[0].guid))

    async def edit(self, guid: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = await self._send(
            "POST",
            client_base.guid_path(guid, "/edits"),
            json=arguments,
            headers={"Idempotency-Key": client_base.new_idempotency_key()},
            timeout=self.client.generate_timeout,
            generation=True,
        )
        return dict(response.json())

    async def get(self, guid: str) -> dict[str, Any]:
        return dict((await self._send("GET", client_base.guid_path(guid))).json())

    async def search(self, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        params = {k: v for k, v in arguments.items() if k != "limit"}
        params["limit"] = search_limit(arguments)
        return list((await self._send("GET", "/image/", params=params)).json())

    async def page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await self._send("GET", "/image/", params=params)
        following = client_base.next_page_params(response)
        return list(response.json()), following.get("cursor") if following else None

    async def models(self) -> list[dict[str, Any]]:
        try:
            listed = (await self._send("GET", "/v1/models")).json()["data"]
        except ToolFailure as exc:  # the /v1 face answers errors in OpenAI's shape
            with contextlib.suppress(ValueError, TypeError, KeyError):
                raise ToolFailure(str(json.loads(exc.message)["error"]["message"])) from None
            raise
        return [{"id": model["id"], "default": index == 0} for index, model in enumerate(listed)]

    async def delete(self, guid: str) -> None:
        await self._send("DELETE", client_base.guid_path(guid))

    async def usage(self, since: str | None, until: str | None) -> dict[str, Any]:
        params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        return dict((await self._send("GET", "/usage", params=params)).json())

    async def preview(self, detail: dict[str, Any], width: int) -> bytes:
        """The server's WebP variant at the widest width whose longest side is at most `width`."""
        fit = width * int(detail["width"]) // max(int(detail["width"]), int(detail["height"]), 1)
        variant = max((w for w in VARIANT_WIDTHS if w <= fit), default=VARIANT_WIDTHS[0])
        path = client_base.guid_path(str(detail["guid"]), "/content")
        return (await self._send("GET", path, params={"width": variant, "format": "webp"})).content

    async def content(self, guid: str) -> tuple[bytes, str]:
        response = await self._send("GET", client_base.guid_path(guid, "/content"))
        return response.content, response.headers.get("content-type", "application/octet-stream")

    async def link(self, detail: dict[str, Any]) -> str:
        answer = (await self._send("GET", client_base.guid_path(str(detail["guid"]), "/url"))).json()
        return str(answer["url"])

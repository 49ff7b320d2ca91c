"""ComfyUI as a catalogue provider: an API-format workflow graph on the user's own GPU.

- The entry's `workflow` (a JSON file exported with "Export (API)", relative to the models file) and
  `inputs` ({what: "node.input"}) say where the prompt, negative_prompt, size, seed and (for edits) the
  source image go (the workflow's own values stay where the request sets none);
  a mapping to a node or input not in the graph stops the start, naming it.
- A generation opens the WebSocket `/ws?clientId=` first, then queues `POST /prompt` with that
  client_id (a graph error, `node_errors`, is a 422 naming the node), follows the `executing` /
  `progress` events and binary preview frames (the job's `partial_image` events), then reads the outputs
  from `GET /history/{prompt_id}` and their bytes from `GET /view`.
- Edits upload the source through `POST /upload/image` and put its name in the mapped `image` input.
- A generation given up (its job cancelled, its deadline passed) takes its prompt out of ComfyUI's
  queue (`POST /queue {"delete"}`) or, when it is the one running, stops it (`POST /interrupt`).
- Readiness is `GET /system_stats`.
"""

import asyncio
import json
import logging
import random
import struct
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from pixyproxy.adapters.providers.base import Call, ProviderContext, unavailable
from pixyproxy.adapters.providers.http_calls import HttpProvider
from pixyproxy.domain.capabilities import ANY, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import GeneratorError, GeneratorTimeout, InvalidImageRequest
from pixyproxy.domain.models import (
    GeneratedImage,
    GenerationRequest,
    OnPartial,
    PartialImage,
    SourceImage,
)
from pixyproxy.domain.progress import report_steps

log = logging.getLogger(__name__)

FIELDS: frozenset[str] = frozenset({"workflow", "inputs"})
REQUIRED = ("workflow", "inputs")
NEEDS_KEY = False
DEFAULT_BASE_URL = "http://127.0.0.1:8188"
# What PixyProxy can put into a workflow; an unmapped one the request sets is refused by name.
MAPPABLE = ("prompt", "negative_prompt", "width", "height", "seed", "image")
PREVIEW_IMAGE = 1  # the binary frame's event type; then 1 = JPEG or 2 = PNG
PREVIEW_FORMATS = {1: "jpeg", 2: "png"}
MAX_PREVIEWS = 3
WITHDRAW_SECONDS = 5.0
SD_SIZES = SizeRule(free=True, min_side=64, max_side=4096, multiple_of=8)


def prepare_entry(entry: ModelEntry, base: Path) -> ModelEntry:
    """The workflow read and checked against the mapping; its path made absolute."""
    path = Path(str(entry.extras.get("workflow")))
    path = path if path.is_absolute() else base / path
    graph = read_workflow(path)
    inputs = entry.extras.get("inputs")
    if not isinstance(inputs, dict) or "prompt" not in inputs:
        raise ValueError('inputs: must map at least prompt to a node\'s input, as prompt: "6.text"')
    for what, target in inputs.items():
        if what not in MAPPABLE:
            raise ValueError(f"inputs: {what}: not one of {', '.join(MAPPABLE)}")
        node, _, name = str(target).partition(".")
        if node not in graph:
            raise ValueError(f"inputs: {what}: the workflow has no node {node!r}")
        if not name or name not in (graph[node].get("inputs") or {}):
            kind = graph[node].get("class_type", "?")
            raise ValueError(f"inputs: {what}: node {node} ({kind}) has no input {name!r}")
    return ModelEntry.model_validate({**entry.model_dump(), "workflow": str(path)})


def read_workflow(path: Path) -> dict[str, Any]:
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"workflow: {path} cannot be read ({exc.strerror or exc})") from None
    except ValueError:
        raise ValueError(f"workflow: {path} is not JSON") from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise ValueError(f"workflow: {path} is the UI format; export it with Export (API)")
    if not isinstance(graph, dict) or not all(
        isinstance(node, dict) and "class_type" in node for node in graph.values()
    ):
        raise ValueError(f"workflow: {path} is not an API-format workflow (node id -> class_type, inputs)")
    return graph


def entry_capabilities(entry: ModelEntry) -> Capabilities:
    """Size only where width and height are mapped; edits only where an image input is."""
    inputs = entry.extras.get("inputs") or {}
    sized = "width" in inputs and "height" in inputs
    options: dict[str, tuple[Any, ...] | None] = {"size": ANY} if sized else {}
    if "negative_prompt" in inputs:
        options["negative_prompt"] = ANY
    return Capabilities(
        options=options,
        sizes=SD_SIZES,
        edits="image" in inputs,
        notes={
            "size": "the workflow maps no width and height",
            "negative_prompt": "the workflow maps no negative_prompt",
            "quality": "a workflow's quality is its own (steps, sampler)",
            "output_format": "the workflow decides what it saves",
            "background": "the workflow decides what it draws",
        },
    )


def capabilities(model: str) -> Capabilities:
    return Capabilities(options={}, edits=False)


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool) -> "ComfyImageGenerator":
    path = Path(str(entry.extras.get("workflow")))
    return ComfyImageGenerator(
        name=entry.provider_model,
        graph=read_workflow(path),
        inputs={str(k): str(v) for k, v in (entry.extras.get("inputs") or {}).items()},
        base_url=entry.base_url or DEFAULT_BASE_URL,
        timeout_seconds=context.timeout(entry),
        connect_timeout_seconds=context.connect_timeout_seconds,
    )


class ComfyImageGenerator(HttpProvider):
    name = "comfyui"
    label = "ComfyUI"
    max_sources = 1  # the workflow's one mapped image input

    def __init__(
        self,
        *,
        name: str,
        graph: dict[str, Any],
        inputs: dict[str, str],
        base_url: str,
        timeout_seconds: float,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        super().__init__(timeout_seconds=timeout_seconds, connect_timeout_seconds=connect_timeout_seconds)
        self.default_model = name
        self._graph = graph
        self._inputs = inputs
        self._base_url = base_url.rstrip("/")
        self._deadline_seconds = timeout_seconds

    async def _make(
        self, request: GenerationRequest, images: list[SourceImage], call: Call
    ) -> GeneratedImage:
        source = images[0] if images else None
        try:
            async with asyncio.timeout(self._deadline_seconds):
                uploaded = await self._upload(source) if source is not None else None
                graph, graph_values = self._filled(request, uploaded)
                client_id = uuid.uuid4().hex
                async with self.session.ws_connect(
                    f"{self._base_url}/ws?{urlencode({'clientId': client_id})}", heartbeat=30
                ) as socket:
                    # Shielded: a cancel while queueing still learns the prompt's id, to withdraw it.
                    queued = asyncio.ensure_future(self._queue(graph, client_id))
                    try:
                        prompt_id = await asyncio.shield(queued)
                        await self._follow(
                            socket, prompt_id, min(call.previews, MAX_PREVIEWS), call.on_partial
                        )
                    except BaseException:  # cancelled, timed out or broken: nobody will take the image
                        await asyncio.shield(self._withdraw(queued))
                        raise
                data = await self._output(prompt_id)
        except TimeoutError:
            raise GeneratorTimeout("ComfyUI did not finish the workflow in time") from None
        except aiohttp.ClientError as exc:
            log.warning("ComfyUI call failed: %s", type(exc).__name__)
            raise unavailable("ComfyUI could not be reached or broke the connection") from None
        size = request.size if request.size not in (None, "auto") else None
        # What was put into the workflow that a request cannot repeat by itself: kept with the image.
        details: dict[str, Any] = {"prompt_id": prompt_id}
        details |= {what: graph_values[what] for what in ("seed", "negative_prompt") if what in graph_values}
        return GeneratedImage(
            data=data, model=self.default_model, size=size, usage={"provider_details": details}
        )

    def _filled(
        self, request: GenerationRequest, uploaded: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The workflow filled in, and the values that went into its mapped inputs."""
        graph = json.loads(json.dumps(self._graph))  # a copy per generation
        values: dict[str, Any] = {"prompt": request.prompt, "seed": random.randrange(2**48)}
        if request.size not in (None, "auto"):
            values["width"], values["height"] = (int(n) for n in request.size.split("x"))
        if request.negative_prompt is not None:
            values["negative_prompt"] = request.negative_prompt
        if uploaded is not None:
            values["image"] = uploaded
        mapped = {what: values[what] for what in self._inputs if what in values}
        for what, value in mapped.items():
            node, _, name = self._inputs[what].partition(".")
            graph[node]["inputs"][name] = value
        return graph, mapped

    async def _upload(self, source: SourceImage) -> str:
        form = aiohttp.FormData()
        form.add_field(
            "image",
            source.data,
            filename=f"pixyproxy-{uuid.uuid4().hex}-{source.filename}",
            content_type=source.content_type,
        )
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        status, answer, _ = await self.request_json("POST", f"{self._base_url}/upload/image", data=form)
        if status != 200 or not isinstance(answer, dict) or not answer.get("name"):
            raise GeneratorError(f"ComfyUI refused the uploaded image (HTTP {status})")
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else str(answer["name"])

    async def _queue(self, graph: dict[str, Any], client_id: str) -> str:
        status, answer, _ = await self.request_json(
            "POST", f"{self._base_url}/prompt", json={"prompt": graph, "client_id": client_id}
        )
        if status == 200 and isinstance(answer, dict) and answer.get("prompt_id"):
            return str(answer["prompt_id"])
        if isinstance(answer, dict) and answer.get("node_errors"):
            node, errors = next(iter(answer["node_errors"].items()))
            first = (errors.get("errors") or [{}])[0]
            raise InvalidImageRequest(
                f"ComfyUI refused the workflow at node {node} ({errors.get('class_type', '?')}): "
                f"{first.get('message', '')} {first.get('details', '')}".strip()
            )
        error = answer.get("error") if isinstance(answer, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise GeneratorError(f"ComfyUI refused the workflow (HTTP {status}): {message or 'no details'}")

    async def _follow(
        self,
        socket: aiohttp.ClientWebSocketResponse,
        prompt_id: str,
        previews: int,
        on_partial: OnPartial | None,
    ) -> None:
        """Until ComfyUI says the prompt is done (executing with no node, or execution_success)."""
        sent = 0
        async for message in socket:
            if message.type == aiohttp.WSMsgType.BINARY:
                frame = message.data
                if len(frame) > 8 and sent < previews and on_partial is not None:
                    event, kind = struct.unpack(">II", frame[:8])
                    if event == PREVIEW_IMAGE and kind in PREVIEW_FORMATS:
                        await on_partial(PartialImage(sent, frame[8:], PREVIEW_FORMATS[kind]))
                        sent += 1
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            data = event.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            kind = event.get("type")
            if kind == "progress":  # a sampler's step: the job's progress
                report_steps(data.get("value"), data.get("max"))
            if kind == "execution_error":
                raise GeneratorError(
                    f"ComfyUI failed at node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_message', '')}".strip()
                )
            if kind == "execution_interrupted":  # stopped at ComfyUI (its UI, another client)
                raise GeneratorError(f"ComfyUI's prompt was interrupted at node {data.get('node_id')}")
            if kind == "execution_success" or (
                kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id
            ):
                return
        raise unavailable("ComfyUI closed the WebSocket before the workflow finished")

    async def _withdraw(self, queued: "asyncio.Future[str]") -> None:
        """The prompt leaves ComfyUI's queue, or stops if it is the one running: the GPU is not kept
        busy for an image nobody waits for. Only this prompt: GET /queue says whether it runs, and
        /interrupt names it (a server too old to read the name stops what runs, which is ours)."""
        try:
            prompt_id = await queued
        except Exception:
            return
        try:
            async with asyncio.timeout(WITHDRAW_SECONDS):
                await self.request_json("POST", f"{self._base_url}/queue", json={"delete": [prompt_id]})
                _, queue, _ = await self.request_json("GET", f"{self._base_url}/queue")
                running = queue.get("queue_running") if isinstance(queue, dict) else None
                if any(isinstance(item, list) and prompt_id in item[1:2] for item in running or []):
                    await self.request_json(
                        "POST", f"{self._base_url}/interrupt", json={"prompt_id": prompt_id}
                    )
        except Exception as exc:
            log.warning("could not withdraw ComfyUI prompt %s: %s", prompt_id, type(exc).__name__)

    async def _output(self, prompt_id: str) -> bytes:
        status, history, _ = await self.request_json("GET", f"{self._base_url}/history/{prompt_id}")
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if status != 200 or not isinstance(entry, dict):
            raise GeneratorError(f"ComfyUI has no history of prompt {prompt_id}")
        for output in (entry.get("outputs") or {}).values():
            for image in output.get("images") or []:
                if image.get("type", "output") == "output":
                    query = urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
                    return await self.download(f"{self._base_url}/view?{query}")
        raise GeneratorError("the ComfyUI workflow saved no image (it needs a SaveImage node)")

    async def ping(self) -> None:
        status, _, _ = await self.request_json("GET", f"{self._base_url}/system_stats")
        if status != 200:
            raise GeneratorError(f"ComfyUI's system_stats answered HTTP {status}")

"""A fake ComfyUI server, from its source (server.py): real HTTP and a real WebSocket on a random
127.0.0.1 port.

- `GET /ws?clientId=` (WebSocket): a `status` message at once; for each prompt queued with that
  client_id: `execution_start`, `executing` per node, `progress` (value/max) per sampler step with a
  binary preview frame after each (4 bytes event type 1 = PREVIEW_IMAGE, 4 bytes 2 = PNG, the PNG),
  `executed` for the SaveImage node, then `executing` with node null and `execution_success`.
- `POST /prompt` `{prompt, client_id}` answers `{prompt_id, number, node_errors: {}}`; a graph that is
  not one (no prompt, a node without class_type, an unknown class) is a 400 with `error`; an input of the
  wrong type (CLIPTextEncode text not a string, EmptyLatentImage sides not multiples of 8, KSampler seed
  not an integer >= 0, LoadImage naming a file never uploaded) is a 400 with `node_errors` per node.
  A prompt text with "crash" fails while running: `execution_error` naming the KSampler node.
- `GET /history/{prompt_id}` names the outputs; `GET /view?filename=&subfolder=&type=` returns the bytes
  (404 otherwise); `POST /upload/image` (multipart `image`, `type`, `overwrite`) answers
  `{name, subfolder, type}`; `GET /system_stats`.
- One prompt runs at a time, the others wait in the queue in order. `GET /queue` answers
  `{queue_running, queue_pending}` (items `[number, prompt_id, prompt, extra_data, outputs]`);
  `POST /queue {"delete": [prompt_id...]}` takes pending prompts out (a running one is not touched);
  `POST /interrupt` stops the running prompt between steps (with `{"prompt_id"}`: only when that one is
  running), which sends `execution_interrupted` and leaves an error in its history.
"""

import asyncio
import io
import struct
import threading
import uuid
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.support.local_server import LocalServer

CLASSES = {
    "KSampler",
    "CheckpointLoaderSimple",
    "EmptyLatentImage",
    "CLIPTextEncode",
    "VAEDecode",
    "SaveImage",
    "LoadImage",
    "VAEEncode",
}


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


class FakeComfyUI(LocalServer):
    def __init__(self, steps: int = 3, step_seconds: float = 0.0) -> None:
        super().__init__()
        self.steps = steps
        self.step_seconds = step_seconds  # a sampler step's time, before its progress and preview
        self.sockets: dict[str, WebSocket] = {}
        self.prompts: list[dict[str, Any]] = []
        self.history: dict[str, Any] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, filename) -> bytes
        self.previews_sent = 0
        self.gate: threading.Event | None = None  # set: prompts wait for it before running
        self.running: list[Any] | None = None  # the queue item being run
        self.pending: list[list[Any]] = []
        self.deleted: list[str] = []  # prompt ids taken out of the queue by POST /queue
        self.interrupted: list[str] = []  # prompt ids stopped by POST /interrupt
        self._interrupt = threading.Event()
        self._changed = threading.Condition()  # told of each change of the queue (wait_until)
        self._turn: asyncio.Lock | None = None  # made on the server's loop
        self.on_preview: Any = None  # called with each binary preview frame's send time (benches)
        self.app = Starlette(
            routes=[
                WebSocketRoute("/ws", self._ws),
                Route("/prompt", self._prompt, methods=["POST"]),
                Route("/history/{prompt_id}", self._history, methods=["GET"]),
                Route("/view", self._view, methods=["GET"]),
                Route("/upload/image", self._upload, methods=["POST"]),
                Route("/system_stats", self._stats, methods=["GET"]),
                Route("/queue", self._queue, methods=["GET", "POST"]),
                Route("/interrupt", self._interrupt_route, methods=["POST"]),
            ]
        )

    def wait_until(self, condition: Any, timeout: float = 20.0) -> None:
        """Blocks (a test's thread) until `condition()` holds after a change of the queue."""
        with self._changed:
            assert self._changed.wait_for(condition, timeout), "the fake ComfyUI never got there"

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def reset(self) -> None:
        self.prompts.clear()
        self.history.clear()
        self.previews_sent = 0
        self.deleted.clear()
        self.interrupted.clear()
        self.files = {k: v for k, v in self.files.items() if k[0] != "output"}

    async def _ws(self, socket: WebSocket) -> None:
        client_id = socket.query_params.get("clientId") or uuid.uuid4().hex
        await socket.accept()
        self.sockets[client_id] = socket
        await socket.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
        )
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.sockets.pop(client_id, None)

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "system": {"os": "posix", "comfyui_version": "0.3.0", "python_version": "3.12"},
                "devices": [{"name": "cpu", "type": "cpu", "vram_total": 0, "vram_free": 0}],
            }
        )

    async def _queue(self, request: Request) -> Response:
        if request.method == "GET":
            running = [self.running] if self.running is not None else []
            return JSONResponse({"queue_running": running, "queue_pending": list(self.pending)})
        body = await request.json()
        if body.get("clear"):
            self.deleted += [item[1] for item in self.pending]
            self.pending.clear()
        for prompt_id in body.get("delete") or []:
            if any(item[1] == prompt_id for item in self.pending):
                self.pending = [item for item in self.pending if item[1] != prompt_id]
                self.deleted.append(prompt_id)
        self._notify()
        return Response(status_code=200)

    async def _interrupt_route(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running is not None and wanted in (None, self.running[1]):
            self._interrupt.set()
        return Response(status_code=200)

    async def _upload(self, request: Request) -> Response:
        form = await request.form()
        image = form.get("image")
        if image is None or isinstance(image, str):
            return Response(status_code=400)
        kind, subfolder = str(form.get("type") or "input"), str(form.get("subfolder") or "")
        name = image.filename or "image.png"
        self.files[(kind, subfolder, name)] = await image.read()
        return JSONResponse({"name": name, "subfolder": subfolder, "type": kind})

    async def _view(self, request: Request) -> Response:
        q = request.query_params
        data = self.files.get((q.get("type", "output"), q.get("subfolder", ""), q.get("filename", "")))
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/png")

    async def _history(self, request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        return JSONResponse({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def _prompt(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"error": {"type": "invalid_prompt", "message": "invalid JSON"}, "node_errors": {}}, 400
            )
        graph = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(graph, dict):
            return JSONResponse(
                {
                    "error": {
                        "type": "no_prompt",
                        "message": "No prompt provided",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": {},
                },
                400,
            )
        for node_id, node in graph.items():
            if not isinstance(node, dict) or node.get("class_type") not in CLASSES:
                return JSONResponse(
                    {
                        "error": {
                            "type": "invalid_prompt",
                            "message": f"Cannot execute because node {node_id} does not exist.",
                            "details": "",
                            "extra_info": {},
                        },
                        "node_errors": {},
                    },
                    400,
                )
        errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            problem = self._input_problem(node)
            if problem:
                errors[node_id] = {
                    "errors": [
                        {
                            "type": "value_not_valid",
                            "message": "Value not valid",
                            "details": problem,
                            "extra_info": {},
                        }
                    ],
                    "dependent_outputs": [],
                    "class_type": node["class_type"],
                }
        if errors:
            return JSONResponse(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": errors,
                },
                400,
            )
        prompt_id = str(uuid.uuid4())
        self.prompts.append(body)
        item = [len(self.prompts), prompt_id, graph, {"client_id": body.get("client_id")}, []]
        self.pending.append(item)
        self._notify()
        asyncio.get_running_loop().create_task(self._take_turn(item))
        return JSONResponse({"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}})

    async def _take_turn(self, item: list[Any]) -> None:
        """One prompt at a time, in the order queued; one deleted meanwhile never runs."""
        self._turn = self._turn or asyncio.Lock()
        async with self._turn:  # asyncio's Lock wakes its waiters in order
            if item not in self.pending:
                return
            self.pending.remove(item)
            self.running = item
            self._interrupt.clear()
            self._notify()
            try:
                await self._execute(item[1], item[2], item[3]["client_id"])
            finally:
                self.running = None
                self._notify()

    def _input_problem(self, node: dict[str, Any]) -> str | None:
        inputs, kind = node.get("inputs") or {}, node["class_type"]
        if kind == "CLIPTextEncode" and not isinstance(inputs.get("text"), str):
            return "text: must be a string"
        if kind == "EmptyLatentImage":
            for side in ("width", "height"):
                value = inputs.get(side)
                if not isinstance(value, int) or value < 16 or value % 8:
                    return f"{side}: {value} is not a multiple of 8 of at least 16"
        if kind == "KSampler" and not (isinstance(inputs.get("seed"), int) and inputs["seed"] >= 0):
            return "seed: must be an integer >= 0"
        if kind == "LoadImage":
            name = str(inputs.get("image", ""))
            sub, _, file = name.rpartition("/")
            if ("input", sub, file) not in self.files:
                return f"Invalid image file: {name}"
        return None

    async def _execute(self, prompt_id: str, graph: dict[str, Any], client_id: str | None) -> None:
        async def send(kind: str, data: dict[str, Any]) -> None:
            await self._to_client(client_id, {"type": kind, "data": {**data, "prompt_id": prompt_id}})

        await send("execution_start", {"timestamp": 0})
        if self.gate is not None:  # running, held until the test lets it go (or interrupts it)
            while not self.gate.is_set() and not self._interrupt.is_set():
                await asyncio.to_thread(self.gate.wait, 0.05)
        by_class = {node["class_type"]: node_id for node_id, node in graph.items()}
        texts = " ".join(
            n["inputs"].get("text", "") for n in graph.values() if n["class_type"] == "CLIPTextEncode"
        )
        latent = graph.get(by_class.get("EmptyLatentImage", ""), {}).get("inputs", {})
        size = (latent.get("width", 512), latent.get("height", 512))
        if "LoadImage" in by_class:
            name = graph[by_class["LoadImage"]]["inputs"]["image"]
            sub, _, file = name.rpartition("/")
            size = Image.open(io.BytesIO(self.files[("input", sub, file)])).size
        for node_id in graph:
            await send("executing", {"node": node_id, "display_node": node_id})
            if graph[node_id]["class_type"] == "KSampler":
                if "crash" in texts:
                    await send(
                        "execution_error",
                        {
                            "node_id": node_id,
                            "node_type": "KSampler",
                            "exception_message": "CUDA out of memory",
                            "exception_type": "torch.OutOfMemoryError",
                        },
                    )
                    self.history[prompt_id] = {
                        "prompt": [0, prompt_id, graph, {}, []],
                        "outputs": {},
                        "status": {"status_str": "error", "completed": False},
                    }
                    return
                for step in range(1, self.steps + 1):
                    if self.step_seconds:
                        await asyncio.sleep(self.step_seconds)
                    if self._interrupt.is_set():
                        await self._stopped(prompt_id, graph, node_id, send)
                        return
                    await send("progress", {"value": step, "max": self.steps, "node": node_id})
                    if (client_id or "") in self.sockets:
                        frame = struct.pack(">II", 1, 2) + _png((64, 64), (step * 60, 0, 0))
                        if self.on_preview is not None:
                            self.on_preview(frame)
                        if await self._to_client(client_id, frame):
                            self.previews_sent += 1
        save = by_class["SaveImage"]
        filename = f"ComfyUI_{len(self.history) + 1:05d}_.png"
        self.files[("output", "", filename)] = _png(size, (40, 90, 200))
        images = [{"filename": filename, "subfolder": "", "type": "output"}]
        await send("executed", {"node": save, "display_node": save, "output": {"images": images}})
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, graph, {}, [save]],
            "outputs": {save: {"images": images}},
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        await send("executing", {"node": None})
        await send("execution_success", {"timestamp": 1})

    async def _to_client(self, client_id: str | None, message: dict[str, Any] | bytes) -> bool:
        """A message to the prompt's client while it is connected. As ComfyUI: a client gone mid-prompt
        (its socket closed under a send) is dropped, and the prompt runs on."""
        socket = self.sockets.get(client_id or "")
        if socket is None:
            return False
        try:
            if isinstance(message, bytes):
                await socket.send_bytes(message)
            else:
                await socket.send_json(message)
        except Exception:
            self.sockets.pop(client_id or "", None)
            return False
        return True

    async def _stopped(self, prompt_id: str, graph: dict[str, Any], node_id: str, send: Any) -> None:
        """As ComfyUI answers an interrupted prompt: execution_interrupted, an error in its history."""
        self.interrupted.append(prompt_id)
        self._notify()
        await send(
            "execution_interrupted",
            {"node_id": node_id, "node_type": graph[node_id]["class_type"], "executed": []},
        )
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, graph, {}, []],
            "outputs": {},
            "status": {"status_str": "error", "completed": False},
        }

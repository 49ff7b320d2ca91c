"""A fake of the AUTOMATIC1111 / Forge web UI API (`--api`), from its source (modules/api/api.py and
models.py): real HTTP on a random 127.0.0.1 port.

- With `auth` ("user:password", as `--api-auth`), every /sdapi route wants HTTP Basic: otherwise 401
  `{"detail": "Incorrect username or password"}` with `WWW-Authenticate: Basic`.
- `GET /sdapi/v1/options` answers the options, `sd_model_checkpoint` among them, as the title
  `name.safetensors [hash]`; `POST /sdapi/v1/options` sets them (an unknown checkpoint: 500, as the web
  UI fails loading it) and answers null.
- `POST /sdapi/v1/txt2img` / `img2img` (img2img needs `init_images` of base64) answer
  `{images: [base64 PNG], parameters, info}` with `info` a JSON string (seed, sampler_name, steps...);
  width and height not multiples of 8 are a 422 (pydantic's shape). `fail_next("server_error")` scripts a 500.
- `GET /sdapi/v1/progress?skip_current_image=` answers `{progress, eta_relative, state, current_image,
  textinfo}` (ProgressResponse): progress 0 and no job when idle. With `steps`, a generation samples that
  many steps and takes the next step each time its progress is read (so a reader sees every step, in
  order, without sleeps; a reader that never comes lets it finish after `step_timeout` seconds each);
  `current_image` (a small PNG) only when not skipped. With `gate` set, generations wait for it first.
"""

import asyncio
import base64
import binascii
import contextlib
import io
import json
import threading
from collections import deque
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.local_server import LocalServer

CHECKPOINTS = {"sd_xl_base_1.0": "31e35c80fc", "v1-5-pruned-emaonly": "6ce0161689"}


def title(name: str) -> str:
    return f"{name}.safetensors [{CHECKPOINTS[name]}]"


class FakeA1111(LocalServer):
    def __init__(self, auth: str | None = None, steps: int = 0, step_timeout: float = 10.0) -> None:
        super().__init__()
        self.auth = auth
        self.steps = steps
        self.step_timeout = step_timeout
        self.gate: threading.Event | None = None  # set: generations wait for it before sampling
        self.progress_reads: list[dict[str, Any]] = []  # what each progress read answered
        self._step = 0  # of the generation sampling now; 0 and no _stepped: idle
        self._stepped: asyncio.Event | None = None  # set by a progress read: take the next step
        self.options: dict[str, Any] = {
            "sd_model_checkpoint": title("v1-5-pruned-emaonly"),
            "CLIP_stop_at_last_layers": 1,
        }
        self.calls: list[tuple[str, str, Any]] = []
        self.checkpoint_switches = 0
        self._script: deque[str] = deque()
        self.app = Starlette(
            routes=[
                Route("/sdapi/v1/options", self._get_options, methods=["GET"]),
                Route("/sdapi/v1/options", self._set_options, methods=["POST"]),
                Route("/sdapi/v1/progress", self._progress, methods=["GET"]),
                Route("/sdapi/v1/{route}", self._generate, methods=["POST"]),
            ]
        )

    def reset(self) -> None:
        self.calls.clear()
        self.progress_reads.clear()
        self._script.clear()
        self.checkpoint_switches = 0
        self.options["sd_model_checkpoint"] = title("v1-5-pruned-emaonly")

    def fail_next(self, kind: str = "server_error", times: int = 1) -> None:
        self._script.extend([kind] * times)

    def _refused(self, request: Request) -> Response | None:
        if self.auth is None:
            return None
        header = request.headers.get("authorization", "")
        try:
            given = (
                base64.b64decode(header.removeprefix("Basic ")).decode()
                if header.startswith("Basic ")
                else ""
            )
        except (binascii.Error, UnicodeDecodeError):
            given = ""
        if given == self.auth:
            return None
        return JSONResponse(
            {"detail": "Incorrect username or password"}, 401, headers={"WWW-Authenticate": "Basic"}
        )

    async def _get_options(self, request: Request) -> Response:
        self.calls.append(("GET", "options", None))
        return self._refused(request) or JSONResponse(self.options)

    async def _set_options(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.calls.append(("POST", "options", body))
        wanted = body.get("sd_model_checkpoint")
        if wanted is not None:
            name = wanted.split(" [", 1)[0].removesuffix(".safetensors")
            if name not in CHECKPOINTS:
                return JSONResponse({"error": "RuntimeError", "detail": f"model {wanted!r} not found"}, 500)
            self.options["sd_model_checkpoint"] = title(name)
            self.checkpoint_switches += 1
        self.options.update({k: v for k, v in body.items() if k != "sd_model_checkpoint"})
        return JSONResponse(None)

    async def _progress(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        busy = self._stepped is not None
        skip = request.query_params.get("skip_current_image", "false").lower() == "true"
        answer = {
            "progress": self._step / self.steps if busy else 0.0,
            "eta_relative": float(self.steps - self._step) if busy else 0.0,
            "state": {
                "skipped": False,
                "interrupted": False,
                "job": "job 1/1" if busy else "",
                "job_count": 1 if busy else 0,
                "job_timestamp": "20261207000000",
                "job_no": 0,
                "sampling_step": self._step if busy else 0,
                "sampling_steps": self.steps if busy else 0,
            },
            "current_image": None if skip or not busy or not self._step else _preview(),
            "textinfo": None,
        }
        self.progress_reads.append(answer)
        if self._stepped is not None:
            self._stepped.set()
        return JSONResponse(answer)

    async def _sample(self) -> None:
        """The generation's sampling: one step per progress read (or per step_timeout without one)."""
        if self.gate is not None:
            while not self.gate.is_set():
                await asyncio.to_thread(self.gate.wait, 0.05)
        if not self.steps:
            return
        self._step, self._stepped = 0, asyncio.Event()
        try:
            for step in range(self.steps):
                self._step = step
                self._stepped.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stepped.wait(), self.step_timeout)
        finally:
            self._step, self._stepped = 0, None

    async def _generate(self, request: Request) -> Response:
        route = request.path_params["route"]
        if route not in ("txt2img", "img2img"):
            return JSONResponse({"detail": "Not Found"}, 404)
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        self.calls.append(("POST", route, body))
        if self._script:
            self._script.popleft()
            return JSONResponse({"error": "OutOfMemoryError", "detail": "CUDA out of memory"}, 500)
        width, height = body.get("width", 512), body.get("height", 512)
        problems = [
            f"{n} must be a multiple of 8" for n, v in (("width", width), ("height", height)) if v % 8
        ]
        if not isinstance(body.get("negative_prompt", ""), str):
            problems.append("negative_prompt must be a string")
        if route == "img2img":
            sources = body.get("init_images")
            if not isinstance(sources, list) or not sources:
                problems.append("init_images is required")
            else:
                try:
                    Image.open(io.BytesIO(base64.b64decode(sources[0], validate=True))).load()
                except Exception:
                    problems.append("init_images[0] is not an image")
        if problems:
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": p, "type": "value_error"} for p in problems]}, 422
            )
        await self._sample()
        out = io.BytesIO()
        Image.new("RGB", (width, height), (30, 120, 60)).save(out, format="PNG")
        seed = 1234567 + len(self.calls)
        checkpoint = self.options["sd_model_checkpoint"].split(" [", 1)[0].removesuffix(".safetensors")
        info = {
            "prompt": body.get("prompt", ""),
            "negative_prompt": body.get("negative_prompt", ""),
            "seed": seed,
            "all_seeds": [seed],
            "sampler_name": body.get("sampler_name") or "DPM++ 2M",
            "steps": body.get("steps", 20),
            "cfg_scale": body.get("cfg_scale", 7.0),
            "width": width,
            "height": height,
            "sd_model_name": checkpoint,
            "sd_model_hash": CHECKPOINTS[checkpoint],
        }
        if route == "img2img":
            info["denoising_strength"] = body.get("denoising_strength", 0.75)
        return JSONResponse(
            {
                "images": [base64.b64encode(out.getvalue()).decode()],
                "parameters": body,
                "info": json.dumps(info),
            }
        )


def _preview() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 60)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()

"""A fake OpenAI-compatible image server of our own: real HTTP on a random 127.0.0.1 port.

It follows the Images API as it is today:
* `POST /v1/images/generations` and `POST /v1/images/edits` (multipart: `image[]`, `mask`). GPT image 2.x
  models answer base64 plus `usage`, refuse `response_format`, take background, output_format,
  output_compression, moderation, quality, size, n and safety_identifier, check them as the real API
  does (400 invalid_request_error naming the parameter) and answer in the format asked; with `stream`
  they send server-sent events, `partial_images` previews and then the completed image.
* Shut-down models (gpt-image-1, gpt-image-1-mini, gpt-image-1.5, chatgpt-image-latest, DALL·E 2 and 3)
  and unknown ones answer 404 `model_not_found`.
* `COMPATIBLE_MODEL` stands for an OpenAI-compatible server's own model: it takes `response_format`,
  answers a URL (served by this fake at `/files/...`) or base64, and a `revised_prompt`.
* `GET /v1/models` lists `models` (or answers 404 when `models_endpoint` is off).

Failures are scripted per request: see `fail_next`. Every request is recorded. Runs in a thread of the
test process (`FakeOpenAI`, the `fake_openai` fixture) or as its own process for benchmarks:
`python -m tests.support.fake_openai --port 8089 --latency 1`.
"""

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pixyproxy.settings import Settings

# What fail_next() can script. Each is consumed by one generation request, in order.
FAILURES = {
    "server_error",  # 500 {"error": {"type": "server_error"}}
    "bad_gateway",  # 502 with an HTML body, as a gateway in front of the provider answers
    "gateway_timeout",  # 504: a gateway gave up; the provider may still be generating (and billing)
    "rate_limit",  # 429 with Retry-After (option retry_after, default 1)
    "quota",  # 429 insufficient_quota: the account is out of credit
    "hang",  # accepts the request and answers nothing for `seconds` (default: until stopped)
    "content_policy",  # 400 code content_policy_violation (the DALL·E wording)
    "moderation_blocked",  # 400 code moderation_blocked (the GPT-image wording)
    "bad_size",  # 400 invalid_request_error with param "size"
    "unauthorized",  # 401 invalid_api_key, the message quoting part of the key as the real API does
    "empty",  # 200 with "data": []
    "garbage",  # 200 with random bytes as the body, labelled application/json
    "not_an_image",  # 200 with b64_json that decodes to something that is not an image
    "bad_base64",  # 200 with b64_json that is not base64
    "url_404",  # 200 with a URL that answers 404
    "huge_url",  # 200 with a URL that serves more bytes than any adapter should accept
}
# The model PixyProxy uses when none is configured: the settings' own default, written once there.
DEFAULT_MODEL = Settings.model_fields["openai_model"].default
# Shut down by OpenAI: the pinned SDK's types/image_model.py documents gpt-image-1 (2026-10-23) and
# DALL·E 2 and 3 (2026-05-12); OpenAI's deprecations page the others (2026-12-01).
SHUT_DOWN = (
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "chatgpt-image-latest",
    "dall-e-2",
    "dall-e-3",
)
GPT_IMAGE_2 = re.compile(r"^gpt-image-2(\.[0-9]+)?(-[a-z0-9-]+)?$")
COMPATIBLE_MODEL = "local-sd"  # what a LocalAI-style server would call its model
IMAGE_MODELS = (
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-flare",
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
)
QUALITIES = ("auto", "low", "medium", "high", "xhigh", "max")
PILLOW = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
# The pinned SDK's types (image_generate_params.py): gif, svg, complexity and the frame options; xhigh and
# max on the 2.5 models (and, as the issue says, the 2.6 ones).
LATEST = re.compile(r"^gpt-image-2\.[56]-")
FORMATS = (*PILLOW, "gif", "svg")
SVG_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def _dimensions(size: str) -> tuple[int, int]:
    return (1024, 1024) if size in ("", "auto") else tuple(int(n) for n in size.split("x"))  # type: ignore[return-value]


def _encode(
    image: Image.Image, fmt: str = "png", compression: int | None = None, fast: bool = False
) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, format="PNG", compress_level=0 if fast else 6)
    elif fmt == "gif":  # a few frames, each a shade darker, so it is animated
        frames = [image.convert("RGB").point(lambda v, i=i: max(0, v - 30 * i)) for i in range(3)]
        frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    elif fmt == "svg":  # with a script in it, as a hostile or careless author might write: never run
        width, height = image.size
        out.write(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f"onload=\"document.title='svg script ran'\">"
            f'<script>document.title = "svg script ran"; window.parent.svgScriptRan = true;</script>'
            f'<rect width="{width}" height="{height}" fill="#2878c8"/></svg>'.encode()
        )
    else:
        if fmt == "jpeg":
            image = image.convert("RGB")
        image.save(out, format=PILLOW[fmt], quality=100 if compression is None else max(1, compression))
    return out.getvalue()


def _png(size: str, noise: bool = False, fmt: str = "png", transparent: bool = False) -> bytes:
    """An image of that size: one colour (a few KB), or random pixels (as large as a real answer, ~3 MB).
    transparent: the left half has alpha 0."""
    width, height = _dimensions(size)
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (40, 120, 200))
    if transparent:
        image = image.convert("RGBA")
        alpha = Image.new("L", (width, height), 255)
        alpha.paste(0, (0, 0, width // 2, height))
        image.putalpha(alpha)
    return _encode(image, fmt, fast=noise)  # noise does not compress anyway


def _size_problem(size: str) -> str | None:
    """The real API's rule for GPT image 2.x sizes."""
    if size == "auto":
        return None
    if not re.fullmatch(r"[0-9]+x[0-9]+", size):
        return f"Invalid value: '{size}'. Supported values are 'auto' or WIDTHxHEIGHT."
    width, height = (int(n) for n in size.split("x"))
    if width % 16 or height % 16:
        return f"Invalid size '{size}': width and height must be multiples of 16."
    if max(width, height) > 3 * min(width, height):
        return f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
    if width * height > 3840 * 2160 or max(width, height) > 3840:
        return f"Invalid size '{size}': the maximum supported resolution is 3840x2160."
    return None


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    """Form fields as text; file parts as {"filename", "content_type", "data"} (lists for `name[]`)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        value: Any = (
            {"filename": filename, "content_type": part.get_content_type(), "data": payload}
            if filename is not None
            else payload.decode()
        )
        if name.endswith("[]"):
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw bytes when it was not JSON


@dataclass
class Script:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, port: int = 0, noise: bool = False) -> None:
        self.latency = latency  # seconds each generation takes; downloads are immediate
        self.noise = noise  # answer incompressible images as large as real ones
        self.requests: list[RecordedRequest] = []
        self.downloads: list[RecordedRequest] = []
        self.in_flight = 0  # generation requests being answered now
        self.peak_in_flight = 0  # the most at once since the last reset
        self.barrier: int | None = None  # when set, each generation waits until this many are in flight
        self._arrived: asyncio.Event | None = None
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        self._pngs: dict[tuple[str, bool, str, bool], bytes] = {}
        self.models: list[str] = [*IMAGE_MODELS, COMPATIBLE_MODEL, "gpt-5.5", "text-embedding-3-small"]
        self.models_endpoint = True  # False: GET /v1/models answers 404, as some compatible servers do
        self._files: dict[str, bytes] = {}
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None  # set to end every hanging request
        self.app = Starlette(
            routes=[
                Route("/v1/images/generations", self._generations, methods=["POST"]),
                Route("/v1/images/edits", self._generations, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/files/{name}", self._file, methods=["GET"]),
                Route("/fake/latency", self._set_latency, methods=["PUT"]),  # for benchmarks
            ]
        )

    # -- control, from the test -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL is set to."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def generations(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/images/generations"]

    @property
    def edits(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/images/edits"]

    def fail_next(self, kind: str, times: int = 1, **options: Any) -> None:
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {sorted(FAILURES)}")
        with self._lock:
            self._script.extend(Script(kind, options) for _ in range(times))

    def reset(self) -> None:
        """Forget the script and the records, release hanging requests and wait for them to end."""
        self._release_hangs()
        deadline = time.monotonic() + 5
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.downloads.clear()
            self._files.clear()
            self.peak_in_flight = 0
        self.latency = 0.0
        self.noise = False
        self.barrier = None
        self.models = [*IMAGE_MODELS, COMPATIBLE_MODEL, "gpt-5.5", "text-embedding-3-small"]
        self.models_endpoint = True

    def _release_hangs(self) -> None:
        if self._loop is not None and self._release is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._wake_hangs)

    def _wake_hangs(self) -> None:  # on the server's loop: wake the hanging, arm a fresh event
        assert self._release is not None
        self._release.set()
        self._release = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._release = asyncio.Event()
            ready.set()
            await self._server.serve(sockets=[sock])

        try:
            import uvloop  # the fast loop, as the service itself runs: matters when benchmarks load the fake

            run = uvloop.run
        except ImportError:  # pragma: no cover
            run = asyncio.run
        self._thread = threading.Thread(target=run, args=(serve(),), name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._release_hangs()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ----------------------------------------------------------------------------

    def _next_script(self) -> Script | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    async def _generations(self, request: Request) -> Response:
        self.in_flight += 1  # only the server's own event loop touches these
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.barrier is not None:  # proves concurrency without timing: all must be here at once
                if self._arrived is None or self._arrived.is_set():
                    self._arrived = asyncio.Event()
                if self.in_flight >= self.barrier:
                    self._arrived.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 3)
            return await self._generate(request)
        finally:
            self.in_flight -= 1

    async def _models(self, request: Request) -> Response:
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), None))
        if not self.models_endpoint:
            return Response(b"404 page not found", 404, media_type="text/plain")
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "system"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _generate(self, request: Request) -> Response:
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        body: Any
        if content_type.startswith("multipart/form-data"):
            body = _parse_multipart(content_type, raw)
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body))
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _error(400, "invalid_request_error", "'prompt' is required", param="prompt")
        editing = request.url.path.endswith("/edits")
        if editing and not (body.get("image[]") or body.get("image")):
            return _error(400, "invalid_request_error", "'image' is required", param="image")
        script = self._next_script()
        if script is not None and script.kind == "hang":
            assert self._release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), script.options.get("seconds"))
            return _error(500, "server_error", "hung")
        if self.latency:
            await asyncio.sleep(self.latency)
        if script is not None:
            failure = self._failure(script, request)
            if failure is not None:
                return failure
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "invalid_request_error", "You must provide a model parameter.", param="model")
        if model in SHUT_DOWN or not (GPT_IMAGE_2.match(model) or model == COMPATIBLE_MODEL):
            gone = "has been shut down" if model in SHUT_DOWN else "does not exist"
            return _error(
                404,
                "invalid_request_error",
                f"The model `{model}` {gone} or you do not have access to it.",
                code="model_not_found",
            )
        if model == COMPATIBLE_MODEL:
            return self._compatible_answer(request, body, script)
        refusal = _gpt_image_refusal(body)
        if refusal is not None:
            return refusal
        fmt = body.get("output_format") or "png"
        size = body.get("size") or "auto"
        transparent = body.get("background") == "transparent"
        if editing:
            data = _edited(body, size, fmt, transparent)
            size = "x".join(str(n) for n in _image_size(data))
        else:
            data = self._png(size, fmt, transparent)
            size = size if size != "auto" else "1024x1024"
        words = len(body["prompt"].split())
        input_images = len(body.get("image[]") or ()) if editing else 0
        usage = {
            "input_tokens": words + 323 * input_images,
            "input_tokens_details": {"image_tokens": 323 * input_images, "text_tokens": words},
            "output_tokens": 1056,
            "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
            "total_tokens": words + 323 * input_images + 1056,
        }
        report = {
            "background": "transparent" if transparent else "opaque",
            "output_format": fmt,
            "quality": body.get("quality") if body.get("quality") not in (None, "auto") else "medium",
            "size": size,
        }
        if body.get("safety_identifier"):
            report["safety_identifier"] = body["safety_identifier"]
        if str(body.get("stream")).lower() == "true":
            return self._stream(editing, data, fmt, int(body.get("partial_images") or 0), report, usage)
        answer: dict[str, Any] = {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(data).decode()}],
            "x_fake_field": {"ignored": True},  # unknown fields must not break a client
            **report,
            "usage": usage,
        }
        return JSONResponse(answer, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

    def _compatible_answer(self, request: Request, body: dict[str, Any], script: Script | None) -> Response:
        """A compatible server: `response_format` decides between a URL and base64; a revised prompt."""
        size = body.get("size") or "1024x1024"
        response_format = body.get("response_format") or "url"
        if script is not None and script.kind in ("url_404", "huge_url"):
            response_format = "url"
        png = self._png(size, "png", False)
        item: dict[str, Any] = {"revised_prompt": f"A detailed rendering of: {body['prompt']}"}
        if response_format == "b64_json":
            item["b64_json"] = base64.b64encode(png).decode()
        else:
            name = f"{uuid.uuid4().hex}.png"
            if script is not None and script.kind == "huge_url":
                self._files[name] = os.urandom(script.options.get("bytes", 64 * 1024 * 1024))
            elif script is None or script.kind != "url_404":
                self._files[name] = png
            item["url"] = f"{request.base_url}files/{name}"
        return JSONResponse({"created": int(time.time()), "data": [item], "x_fake_field": {"ignored": True}})

    def _stream(
        self,
        editing: bool,
        data: bytes,
        fmt: str,
        partials: int,
        report: dict[str, Any],
        usage: dict[str, Any],
    ) -> Response:
        prefix = "image_edit" if editing else "image_generation"

        async def events():
            for index in range(max(0, min(3, partials))):
                with Image.open(io.BytesIO(data)) as final:
                    small = final.resize((max(1, final.width // 8), max(1, final.height // 8)))
                    preview = _encode(small.resize(final.size), fmt)
                event = {
                    "type": f"{prefix}.partial_image",
                    "b64_json": base64.b64encode(preview).decode(),
                    "partial_image_index": index,
                    "created_at": int(time.time()),
                    **report,
                }
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            event = {
                "type": f"{prefix}.completed",
                "b64_json": base64.b64encode(data).decode(),
                "created_at": int(time.time()),
                **report,
                "usage": usage,
            }
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    def _failure(self, script: Script, request: Request) -> Response | None:
        kind, options = script.kind, script.options
        if kind == "server_error":
            return _error(500, "server_error", "The server had an error while processing your request.")
        if kind == "bad_gateway":
            return Response(b"<html><body>502 Bad Gateway</body></html>", 502, media_type="text/html")
        if kind == "gateway_timeout":
            return Response(b"<html><body>504 Gateway Time-out</body></html>", 504, media_type="text/html")
        if kind == "rate_limit":
            return _error(
                429,
                "requests",
                "Rate limit reached for images per minute. Please try again later.",
                code="rate_limit_exceeded",
                headers={"retry-after": str(options.get("retry_after", 1))},
            )
        if kind == "quota":
            return _error(
                429, "insufficient_quota", "You exceeded your current quota.", code="insufficient_quota"
            )
        if kind == "content_policy":
            return _error(
                400,
                "invalid_request_error",
                "Your request was rejected as a result of our safety system.",
                code="content_policy_violation",
            )
        if kind == "moderation_blocked":
            return _error(
                400,
                "image_generation_user_error",
                "Your request was rejected by the safety system.",
                code="moderation_blocked",
            )
        if kind == "bad_size":
            return _error(
                400, "invalid_request_error", "Invalid value for 'size'.", param="size", code="invalid_value"
            )
        if kind == "unauthorized":
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            shown = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else key
            return _error(
                401,
                "invalid_request_error",
                f"Incorrect API key provided: {shown}. You can find your API key at "
                f"https://platform.openai.com/account/api-keys. (key: {key})",  # worse than the real one
                code="invalid_api_key",
            )
        if kind == "empty":
            return JSONResponse({"created": int(time.time()), "data": []})
        if kind == "garbage":
            return Response(os.urandom(512), 200, media_type="application/json")
        if kind == "not_an_image":
            data = base64.b64encode(b"this is not an image").decode()
            return JSONResponse({"created": int(time.time()), "data": [{"b64_json": data}]})
        if kind == "bad_base64":
            return JSONResponse({"created": int(time.time()), "data": [{"b64_json": "!!not base64!!"}]})
        return None  # url_404 / huge_url shape the success answer instead

    async def _set_latency(self, request: Request) -> Response:
        self.latency = float(await request.body())
        return Response(status_code=204)

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.downloads.append(RecordedRequest(request.method, request.url.path, dict(request.headers), None))
        data = self._files.get(name)
        if data is None:
            return Response(b"not found", 404)
        return Response(data, media_type="image/png")

    def _png(self, size: str, fmt: str = "png", transparent: bool = False) -> bytes:
        key = (size, self.noise, fmt, transparent)
        if key not in self._pngs:
            self._pngs[key] = _png(size, self.noise, fmt, transparent)
        return self._pngs[key]


def _gpt_image_refusal(body: dict[str, Any]) -> Response | None:
    """A 400 as the real API gives it for a GPT image 2.x option it does not take."""

    def refuse(param: str, message: str) -> Response:
        return _error(400, "invalid_request_error", message, param=param, code="invalid_value")

    if body.get("response_format") is not None:
        return _error(
            400,
            "invalid_request_error",
            "Unknown parameter: 'response_format'.",
            param="response_format",
            code="unknown_parameter",
        )
    fmt = body.get("output_format") or "png"
    latest = bool(LATEST.match(str(body.get("model"))))
    if fmt not in (FORMATS if latest else PILLOW):
        shown = ", ".join(f"'{f}'" for f in (FORMATS if latest else PILLOW))
        return refuse("output_format", f"Invalid value: '{fmt}'. Supported values are: {shown}.")
    if not latest:
        for name in ("complexity", "frame_count", "frame_duration_ms", "svg"):
            if body.get(name) is not None:
                return refuse(name, f"'{name}' is not supported with model '{body.get('model')}'.")
        if body.get("quality") in ("xhigh", "max"):
            return refuse("quality", f"Invalid value: '{body['quality']}' for this model.")
    if body.get("complexity") not in (None, "low", "medium", "high"):
        return refuse("complexity", f"Invalid value: '{body['complexity']}'.")
    for name in ("frame_count", "frame_duration_ms"):
        if body.get(name) is not None and fmt != "gif":
            return refuse(name, f"'{name}' is only supported with output_format=gif.")
    frames = body.get("frame_count")
    if frames is not None and (not str(frames).isdigit() or not 2 <= int(frames) <= 16):
        return refuse("frame_count", f"Invalid value: '{frames}'. Expected 2-16.")
    svg = body.get("svg")
    if svg is not None:
        if fmt != "svg":
            return refuse("svg", "'svg' requires output_format=svg.")
        if (
            not isinstance(svg, dict)
            or not isinstance(svg.get("model"), str)
            or set(svg) - {"model", "reasoning"}
        ):
            return refuse("svg.model", "'svg.model' is required; svg takes model and reasoning.")
        effort = (svg.get("reasoning") or {}).get("effort")
        if effort not in (None, *SVG_EFFORTS):
            return refuse("svg.reasoning.effort", f"Invalid value: '{effort}'.")
    if fmt in ("gif", "svg") and str(body.get("stream")).lower() == "true":
        return refuse("stream", f"output_format={fmt} does not support streaming.")
    problem = _size_problem(str(body.get("size") or "auto"))
    if problem:
        return refuse("size", problem)
    quality = body.get("quality")
    if quality is not None and quality not in QUALITIES:
        return refuse("quality", f"Invalid value: '{quality}'. Supported values are: {', '.join(QUALITIES)}.")
    if body.get("background") not in (None, "auto", "transparent", "opaque"):
        return refuse("background", f"Invalid value: '{body['background']}'.")
    if body.get("background") == "transparent" and fmt == "jpeg":
        return refuse("background", "Transparent backgrounds need output_format 'png' or 'webp'.")
    if body.get("moderation") not in (None, "auto", "low"):
        return refuse("moderation", f"Invalid value: '{body['moderation']}'.")
    compression = body.get("output_compression")
    if compression is not None:
        if fmt not in ("webp", "jpeg"):
            return refuse("output_compression", "output_compression is only supported for webp and jpeg.")
        if not str(compression).isdigit() or not 0 <= int(compression) <= 100:
            return refuse("output_compression", f"Invalid value: '{compression}'. Expected 0-100.")
    n = body.get("n")
    if n is not None and (not str(n).isdigit() or not 1 <= int(n) <= 10):
        return refuse("n", f"Invalid value: '{n}'. Expected 1-10.")
    return None


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _edited(body: dict[str, Any], size: str, fmt: str, transparent: bool) -> bytes:
    """The first image, inverted where the mask is transparent (everywhere without a mask), at `size`
    (the source's own size when auto)."""
    images = body.get("image[]") or [body["image"]]
    with Image.open(io.BytesIO(images[0]["data"])) as opened:
        source = opened.convert("RGBA")
    if size != "auto":
        source = source.resize(_dimensions(size))
    inverted = Image.merge(
        "RGBA", (*Image.eval(source.convert("RGB"), lambda v: 255 - v).split(), source.getchannel("A"))
    )
    mask = body.get("mask")
    if isinstance(mask, dict):
        with Image.open(io.BytesIO(mask["data"])) as opened:
            editable = (
                opened.convert("RGBA")
                .getchannel("A")
                .resize(source.size)
                .point(lambda a: 255 if a == 0 else 0)
            )
        inverted = Image.composite(inverted, source, editable)
    if not transparent:
        inverted = inverted.convert("RGB")
    return _encode(inverted, fmt)


def _error(
    status: int,
    type_: str,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


# -- pytest fixtures (this module is listed in tests/conftest.py pytest_plugins) ---------------------


@pytest.fixture(scope="session")
def _fake_openai_server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(_fake_openai_server, monkeypatch):
    """The fake, fresh for each test; OPENAI_BASE_URL and a dummy OPENAI_API_KEY point the SDK at it."""
    _fake_openai_server.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", _fake_openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0000")
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    yield _fake_openai_server
    _fake_openai_server.reset()


@pytest.fixture
async def openai_generator(fake_openai):
    """The real adapter and SDK against the fake; the key and base URL come from the environment."""
    from pixyproxy.adapters.openai import OpenAIImageGenerator

    generator = OpenAIImageGenerator(
        model=DEFAULT_MODEL, timeout_seconds=5, connect_timeout_seconds=2, max_retries=1
    )
    yield generator
    await generator.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI image server (for benchmarks).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds each generation takes.")
    parser.add_argument("--noise", action="store_true", help="Random-pixel images (~3 MB at 1024x1024).")
    args = parser.parse_args()
    fake = FakeOpenAI(latency=args.latency, port=args.port, noise=args.noise).start()
    print(fake.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

"""A fake OpenAI-compatible image server of our own: real HTTP on a random 127.0.0.1 port.

`POST /v1/images/generations` answers like the real API: base64 plus `usage` for GPT-image models (which
refuse `response_format`), a URL (served by this fake at `/files/...`) or base64 for DALL·E models as
`response_format` asks, `revised_prompt` for dall-e-3. Failures are scripted per request: see `fail_next`.
Every request is recorded. Runs in a thread of the test process (`FakeOpenAI`, the `fake_openai` fixture)
or as its own process for benchmarks: `python -m tests.support.fake_openai --port 8089 --latency 1`.
"""

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
DALL_E = ("dall-e-2", "dall-e-3")


def _png(size: str, noise: bool = False) -> bytes:
    """A PNG of that size: one colour (a few KB), or random pixels (as large as a real answer, ~3 MB)."""
    width, height = (1024, 1024) if size in ("", "auto") else (int(n) for n in size.split("x"))
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (40, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0 if noise else 6)  # noise does not compress anyway
    return out.getvalue()


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
        self._pngs: dict[tuple[str, bool], bytes] = {}
        self._files: dict[str, bytes] = {}
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None  # set to end every hanging request
        self.app = Starlette(
            routes=[
                Route("/v1/images/generations", self._generations, methods=["POST"]),
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

    async def _generate(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body))
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _error(400, "invalid_request_error", "'prompt' is required", param="prompt")
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
        model = body.get("model") or "dall-e-2"  # the real API's default when no model is given
        size = body.get("size") or ("auto" if model.startswith("gpt-image") else "1024x1024")
        response_format = body.get("response_format")
        if model.startswith(("gpt-image", "chatgpt-image")):
            if response_format is not None:
                return _error(
                    400,
                    "invalid_request_error",
                    "Unknown parameter: 'response_format'.",
                    param="response_format",
                    code="unknown_parameter",
                )
            response_format = "b64_json"
        if script is not None and script.kind in ("url_404", "huge_url"):
            response_format = "url"
        png = self._png(size)
        item: dict[str, Any] = {}
        if response_format == "b64_json":
            item["b64_json"] = base64.b64encode(png).decode()
        else:
            name = f"{uuid.uuid4().hex}.png"
            if script is not None and script.kind == "huge_url":
                self._files[name] = os.urandom(script.options.get("bytes", 64 * 1024 * 1024))
            elif script is None or script.kind != "url_404":
                self._files[name] = png
            item["url"] = f"{request.base_url}files/{name}"
        if model == "dall-e-3":
            item["revised_prompt"] = f"A detailed rendering of: {body['prompt']}"
        answer: dict[str, Any] = {
            "created": int(time.time()),
            "data": [item],
            "x_fake_field": {"ignored": True},  # unknown fields must not break a client
        }
        if model.startswith(("gpt-image", "chatgpt-image")):
            words = len(body["prompt"].split())
            answer.update(
                background="opaque",
                output_format="png",
                quality=body.get("quality") or "medium",
                size=size if size != "auto" else "1024x1024",
                usage={
                    "input_tokens": words,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": words},
                    "output_tokens": 1056,
                    "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
                    "total_tokens": words + 1056,
                },
            )
        return JSONResponse(answer, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})

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

    def _png(self, size: str) -> bytes:
        if (size, self.noise) not in self._pngs:
            self._pngs[size, self.noise] = _png(size, self.noise)
        return self._pngs[size, self.noise]


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
    from pixyproxy.adapters.openai_generator import OpenAIImageGenerator

    generator = OpenAIImageGenerator(timeout_seconds=5, connect_timeout_seconds=2, max_retries=1)
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

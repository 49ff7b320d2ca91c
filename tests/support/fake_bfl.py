"""A fake of Black Forest Labs' FLUX API, from its public documentation: real HTTP on a random
127.0.0.1 port.

- `POST /v1/{model}` with the key in `x-key` (missing or wrong: 403) answers `{id, polling_url}`; an
  unknown model 404; a width or height not a multiple of 16, or more than 4 MP, 422 with `detail`;
  an `input_image...` that is not base64 422. Out of credits (`credits = 0`): 402. More than
  `concurrency` tasks unfinished at once: 429.
- `GET /v1/get_result?id=` answers `Pending` for `pending_polls` polls (or `ready_after_seconds`),
  each with `progress` (ResultResponse's optional number: here the share of the polls made so far),
  then `Ready` with `result.sample`, a URL that expires `sample_ttl` seconds (on the fake's clock,
  which a test can advance) after it is made: fetched later it answers 403. An unknown id: `Task not found`.
- A prompt with "forbidden" ends `Request Moderated`, with "explicit" `Content Moderated`, with
  "broken" `Error`.
- Scripted failures: `fail_next("rate_limit" | "server_error", on="submit" | "poll")`.
"""

import base64
import io
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.local_server import LocalServer

KEY = "fake-bfl-key-0000"
MODELS = ("flux-2-pro", "flux-2-max", "flux-kontext-max")
MAX_PIXELS = 4 * 1024 * 1024


@dataclass
class Task:
    prompt: str
    width: int
    height: int
    output_format: str
    images: int
    polls: int = 0
    submitted_at: float = field(default_factory=time.monotonic)
    finished: bool = False  # a final status was answered: no longer counts against concurrency
    sample_made_at: float | None = None
    poll_times: list[float] = field(default_factory=list)


class FakeBfl(LocalServer):
    def __init__(
        self,
        *,
        pending_polls: int = 2,
        sample_ttl: float = 600.0,
        concurrency: int = 24,
        ready_after_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.pending_polls = pending_polls
        self.ready_after_seconds = ready_after_seconds  # set: Pending by time, not by polls
        self.sample_ttl = sample_ttl
        self.concurrency = concurrency
        self.credits = 1_000_000
        self.offset = 0.0  # added to the clock: a test "waits" without sleeping
        self.tasks: dict[str, Task] = {}
        self.submitted: list[dict[str, Any]] = []
        self.submit_headers: list[dict[str, str]] = []
        self.poll_headers: list[dict[str, str]] = []
        self.downloads: list[tuple[str, int]] = []
        self._script: dict[str, deque[str]] = {"submit": deque(), "poll": deque()}
        self.app = Starlette(
            routes=[
                Route("/v1/get_result", self._poll, methods=["GET"]),
                Route("/v1/{model}", self._submit, methods=["POST"]),
                Route("/delivery/{task}.{ext}", self._sample, methods=["GET"]),
            ]
        )

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def fail_next(self, kind: str, on: str = "submit", times: int = 1) -> None:
        assert kind in ("rate_limit", "server_error") and on in self._script
        self._script[on].extend([kind] * times)

    def reset(self) -> None:
        self.tasks.clear()
        self.submitted.clear()
        self.submit_headers.clear()
        self.poll_headers.clear()
        self.downloads.clear()
        for script in self._script.values():
            script.clear()
        self.credits, self.offset, self.pending_polls = 1_000_000, 0.0, 2
        self.ready_after_seconds = None

    def _scripted(self, on: str) -> Response | None:
        if not self._script[on]:
            return None
        if self._script[on].popleft() == "rate_limit":
            return JSONResponse({"detail": "Too many active tasks"}, 429, headers={"retry-after": "1"})
        return JSONResponse({"detail": "Internal Server Error"}, 500)

    async def _submit(self, request: Request) -> Response:
        self.submit_headers.append(dict(request.headers))
        if request.headers.get("x-key") != KEY:
            return JSONResponse({"detail": "Not authenticated - Invalid Authentication"}, 403)
        model = request.path_params["model"]
        if model not in MODELS:
            return JSONResponse({"detail": "Not Found"}, 404)
        if (scripted := self._scripted("submit")) is not None:
            return scripted
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": [{"msg": "invalid JSON"}]}, 422)
        self.submitted.append(body)
        if self.credits <= 0:
            return JSONResponse({"detail": "Insufficient credits"}, 402)
        busy = sum(1 for t in self.tasks.values() if not t.finished)
        if busy >= self.concurrency:
            return JSONResponse({"detail": "Too many active tasks"}, 429, headers={"retry-after": "1"})
        width, height = body.get("width", 1024), body.get("height", 1024)
        problems = [
            f"{name} must be a multiple of 16" for name, v in (("width", width), ("height", height)) if v % 16
        ]
        if width * height > MAX_PIXELS:
            problems.append("at most 4 megapixels")
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            problems.append("prompt is required")
        images = [k for k in body if k == "input_image" or k.startswith("input_image_")]
        for name in images:
            try:
                base64.b64decode(body[name], validate=True)
            except (ValueError, TypeError):
                problems.append(f"{name} is not base64")
        if problems:
            return JSONResponse({"detail": [{"msg": p} for p in problems]}, 422)
        task = str(uuid.uuid4())
        self.credits -= 1
        fmt = body.get("output_format") or "jpeg"
        self.tasks[task] = Task(body["prompt"], width, height, fmt, len(images))
        return JSONResponse(
            {"id": task, "polling_url": f"{self.base_url}/v1/get_result?id={task}", "cost": 3.0}
        )

    async def _poll(self, request: Request) -> Response:
        self.poll_headers.append(dict(request.headers))
        if request.headers.get("x-key") != KEY:
            return JSONResponse({"detail": "Not authenticated - Invalid Authentication"}, 403)
        task_id = request.query_params.get("id", "")
        task = self.tasks.get(task_id)
        if task is None:
            return JSONResponse({"id": task_id, "status": "Task not found"})
        task.poll_times.append(time.monotonic())
        if (scripted := self._scripted("poll")) is not None:
            return scripted
        task.polls += 1
        if self.ready_after_seconds is not None:
            pending = time.monotonic() - task.submitted_at < self.ready_after_seconds
        else:
            pending = task.polls <= self.pending_polls
        if pending:
            return JSONResponse(
                {"id": task_id, "status": "Pending", "progress": task.polls / (self.pending_polls + 1)}
            )
        for word, status in (
            ("forbidden", "Request Moderated"),
            ("explicit", "Content Moderated"),
            ("broken", "Error"),
        ):
            if word in task.prompt:
                task.finished = True
                return JSONResponse({"id": task_id, "status": status, "details": {"reason": word}})
        if task.sample_made_at is None:
            task.sample_made_at, task.finished = self.now(), True
        ext = "png" if task.output_format == "png" else "jpeg"
        sample = f"{self.base_url}/delivery/{task_id}.{ext}?se=signed"
        return JSONResponse(
            {
                "id": task_id,
                "status": "Ready",
                "result": {"sample": sample, "prompt": task.prompt, "seed": 42},
            }
        )

    async def _sample(self, request: Request) -> Response:
        task = self.tasks.get(request.path_params["task"])
        if task is None or task.sample_made_at is None:
            return Response("<Error><Code>BlobNotFound</Code></Error>", 404, media_type="application/xml")
        if self.now() - task.sample_made_at > self.sample_ttl:
            self.downloads.append((request.path_params["task"], 403))
            return Response(
                "<Error><Code>AuthenticationFailed</Code>"
                "<Message>Signed expiry time has passed</Message></Error>",
                403,
                media_type="application/xml",
            )
        self.downloads.append((request.path_params["task"], 200))
        out = io.BytesIO()
        Image.new("RGB", (task.width, task.height), (90, 40, 160)).save(
            out, format="PNG" if task.output_format == "png" else "JPEG"
        )
        return Response(
            out.getvalue(), media_type=f"image/{'png' if task.output_format == 'png' else 'jpeg'}"
        )

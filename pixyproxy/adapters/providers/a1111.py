"""AUTOMATIC1111's Stable Diffusion web UI API (and Forge, SD.Next, which speak it) as a catalogue
provider: a server on the user's own GPU, started with `--api`.

- `POST /sdapi/v1/txt2img` (and `/img2img` for edits, the stored image as `init_images`) answers
  `{images: [base64], parameters, info}`; `info` (a JSON string: seed, sampler, steps...) is kept with
  the image as its provider details (in `usage.provider_details`).
- The entry's `model` is the checkpoint: read from `GET /sdapi/v1/options` and set through
  `POST /sdapi/v1/options` only when it differs (switching checkpoints is slow; one switch at a time).
- `auth_env` names a variable holding `user:password` for `--api-auth` (HTTP Basic).
- `negative_prompt` is the web UI's own field of the same name.
- While a call is in flight, `GET /sdapi/v1/progress?skip_current_image=true` is read every
  PROGRESS_SECONDS and its `progress` (0..1) told to the job. The web UI runs one generation at a time
  and reports whichever runs, so a call queued behind another's may show that one's progress first.
- Readiness is `GET /sdapi/v1/options`.
"""

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from pixyproxy.adapters.providers.base import Call, ProviderContext, fixed
from pixyproxy.adapters.providers.http_calls import HttpProvider
from pixyproxy.domain.capabilities import ANY, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GeneratedImage, GenerationRequest, SourceImage
from pixyproxy.domain.progress import report_progress, report_steps

log = logging.getLogger(__name__)

FIELDS: frozenset[str] = frozenset({"auth_env"})
NEEDS_KEY = False
DEFAULT_BASE_URL = "http://127.0.0.1:7860"
DEFAULT_SIZE = (1024, 1024)
# A modest pace: the web UI answers progress from memory, but it shares the GPU box's one process.
PROGRESS_SECONDS = 0.5
AUTH_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DETAILS = (
    "seed",
    "sampler_name",
    "steps",
    "cfg_scale",
    "sd_model_name",
    "denoising_strength",
    "negative_prompt",
)

# Stable Diffusion draws sides in multiples of 8 (the latent space is an eighth of the image).
SD_SIZES = SizeRule(free=True, min_side=64, max_side=2048, multiple_of=8)
CAPABILITIES = Capabilities(
    options={"size": ANY, "negative_prompt": ANY},
    sizes=SD_SIZES,
    partial_images=False,
    notes={
        "quality": "the web UI's quality is its steps and sampler, set on the server",
        "background": "Stable Diffusion draws no transparent background",
        "output_format": "the web UI answers PNG",
    },
)


capabilities = fixed(CAPABILITIES)


def prepare_entry(entry: ModelEntry, base: Path) -> ModelEntry:
    variable = entry.extras.get("auth_env")
    if variable is not None and not (isinstance(variable, str) and AUTH_ENV.match(variable)):
        raise ValueError("auth_env: must name an environment variable")
    return entry


def check_environment(entry: ModelEntry, environment: Callable[[str], str | None]) -> str | None:
    """auth_env, when given, names a variable set to user:password (never printed)."""
    variable = entry.extras.get("auth_env")
    if variable is None:
        return None
    value = environment(variable)
    return (
        None if value and ":" in value else f"auth_env: the variable {variable} is not set to user:password"
    )


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool) -> "A1111ImageGenerator":
    auth = None
    if (problem := check_environment(entry, context.environment)) is not None:
        raise ValueError(f"the a1111 model {entry.name!r}: {problem}")
    if (variable := entry.extras.get("auth_env")) is not None:
        user, _, password = str(context.environment(variable)).partition(":")
        auth = aiohttp.encode_basic_auth(user, password)
    return A1111ImageGenerator(
        checkpoint=entry.model,
        base_url=entry.base_url or DEFAULT_BASE_URL,
        auth=auth,
        timeout_seconds=context.timeout(entry),
        connect_timeout_seconds=context.connect_timeout_seconds,
    )


class A1111ImageGenerator(HttpProvider):
    name = "a1111"
    label = "the Stable Diffusion web UI"
    takes_mask = True
    max_sources = 1

    def __init__(
        self,
        *,
        checkpoint: str | None,
        base_url: str,
        auth: str | None,
        timeout_seconds: float,
        connect_timeout_seconds: float = 10.0,
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        super().__init__(timeout_seconds=timeout_seconds, connect_timeout_seconds=connect_timeout_seconds)
        self._progress_seconds = progress_seconds
        self.default_model = checkpoint or "a1111"
        self._checkpoint = checkpoint
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": auth} if auth else {}
        self._switch = asyncio.Lock()

    async def _make(
        self, request: GenerationRequest, images: list[SourceImage], call: Call
    ) -> GeneratedImage:
        if not images:
            return await self._call("txt2img", request, self._body(request, None))
        body = self._body(request, images[0])
        body["init_images"] = [base64.b64encode(images[0].data).decode()]
        if call.mask is not None:
            body["mask"] = base64.b64encode(call.mask.data).decode()
        return await self._call("img2img", request, body)

    def _body(self, request: GenerationRequest, source: SourceImage | None) -> dict[str, Any]:
        if request.size not in (None, "auto"):
            width, height = (int(n) for n in request.size.split("x"))
        elif source is not None:
            width, height = max(64, source.width // 8 * 8), max(64, source.height // 8 * 8)
        else:
            width, height = DEFAULT_SIZE
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": width,
            "height": height,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }
        if request.negative_prompt is not None:
            body["negative_prompt"] = request.negative_prompt
        return body

    async def _call(self, route: str, request: GenerationRequest, body: dict[str, Any]) -> GeneratedImage:
        await self._ensure_checkpoint()
        watcher = asyncio.create_task(self._watch_progress())
        try:
            status, answer, _ = await self._json("POST", f"/sdapi/v1/{route}", json=body)
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])  # gone before we return (a cancel of ours still propagates)
        if status != 200 or not isinstance(answer, dict):
            raise GeneratorError(f"the web UI refused the request (HTTP {status}): {_detail(answer)}")
        images = answer.get("images") or []
        try:
            data = base64.b64decode(images[0].split(",", 1)[-1], validate=True)
        except (IndexError, AttributeError, binascii.Error):
            raise GeneratorError("the web UI answered without an image") from None
        details = _details(answer.get("info"))
        return GeneratedImage(
            data=data,
            model=details.get("sd_model_name") or self.default_model,
            size=f"{body['width']}x{body['height']}",
            usage={"provider_details": details} if details else None,
            output_format="png",
        )

    async def _watch_progress(self) -> None:
        """Reads the web UI's progress until cancelled; a failed read only loses that reading."""
        while True:
            await asyncio.sleep(self._progress_seconds)
            with contextlib.suppress(GeneratorError):
                status, answer, _ = await self._json(
                    "GET", "/sdapi/v1/progress", params={"skip_current_image": "true"}
                )
                if status == 200 and isinstance(answer, dict):
                    _report(answer)

    async def _ensure_checkpoint(self) -> None:
        if self._checkpoint is None:
            return
        async with self._switch:
            current = await self._options()
            if _same_checkpoint(current.get("sd_model_checkpoint"), self._checkpoint):
                return
            log.info("switching the web UI's checkpoint to %s", self._checkpoint)
            status, answer, _ = await self._json(
                "POST", "/sdapi/v1/options", json={"sd_model_checkpoint": self._checkpoint}
            )
            if status != 200:
                raise GeneratorError(
                    f"the web UI would not load checkpoint {self._checkpoint!r}: {_detail(answer)}"
                )

    async def _options(self) -> dict[str, Any]:
        status, answer, _ = await self._json("GET", "/sdapi/v1/options")
        if status != 200 or not isinstance(answer, dict):
            raise GeneratorError(f"the web UI's options answered HTTP {status}")
        return answer

    async def _json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        status, answer, headers = await self.request_json(
            method, f"{self._base_url}{path}", headers=self._headers, **kwargs
        )
        if status == 401:
            raise GeneratorError("the web UI refused our credentials (check the entry's auth_env)")
        if status == 404:
            raise GeneratorError("the web UI has no API here: start it with --api")
        return status, answer, headers

    async def ping(self) -> None:
        await self._options()


def _report(answer: dict[str, Any]) -> None:
    """Only values strictly between 0 and 1: 0 is the idle web UI, 1 the job's own once it has the image."""
    progress = answer.get("progress")
    if isinstance(progress, int | float) and not isinstance(progress, bool) and math.isfinite(progress):
        if 0 < progress < 1:
            report_progress(progress)
        return
    state = answer.get("state")
    step, steps = (
        (state.get("sampling_step"), state.get("sampling_steps")) if isinstance(state, dict) else (0, 0)
    )
    if isinstance(step, int) and isinstance(steps, int) and 0 < step < steps:
        report_steps(step, steps)


def _same_checkpoint(current: Any, wanted: str) -> bool:
    """The web UI names checkpoints `file.safetensors [hash]`; the entry may give the title or the stem."""
    if not isinstance(current, str):
        return False
    title = current.split(" [", 1)[0]
    return wanted in (current, title, title.rsplit(".", 1)[0])


def _details(info: Any) -> dict[str, Any]:
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            return {}
    if not isinstance(info, dict):
        return {}
    return {name: info[name] for name in DETAILS if info.get(name) not in (None, "")}


def _detail(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("detail") or answer.get("error") or answer)[:300]
    return "no details"

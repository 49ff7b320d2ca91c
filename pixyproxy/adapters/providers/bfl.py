"""Black Forest Labs' FLUX API as a catalogue provider: it answers later.

- `POST {base_url}/v1/{model}` with the key in `x-key` answers `{id, polling_url}`; the polling URL is
  read with backoff (no tight loop; a 429 waits its Retry-After or longer) until a final status.
- `Ready`: `result.sample` is a signed URL that expires minutes later, so it is downloaded at once and
  the image stored, never handed on. `Request Moderated` / `Content Moderated`: a 422
  content_policy_violation. `Error`, `Task not found` or repeated failures: the generation fails.
- 402 (out of credits) is a 502 provider_billing; sides are multiples of 16, at most 4 MP.
- Edits send the stored image as `input_image` and references as `input_image_2`, `input_image_3`...
- A `Pending` answer's `progress` (a fraction, where the API gives one) is told to the job.
- The key is sent only to the base URL's host or its parent domain's hosts (the polling URL names a
  regional host), never to the sample's URL.
"""

import asyncio
import base64
import logging
import math
import time
from typing import Any
from urllib.parse import urlsplit

from pixyproxy.adapters.providers.base import Call, ProviderContext, fixed, required_key, unavailable
from pixyproxy.adapters.providers.http_calls import HttpProvider
from pixyproxy.domain.capabilities import ANY, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorRateLimited,
    GeneratorTimeout,
)
from pixyproxy.domain.models import GeneratedImage, GenerationRequest, SourceImage
from pixyproxy.domain.progress import report_progress

log = logging.getLogger(__name__)

FIELDS: frozenset[str] = frozenset()
NEEDS_KEY = True
DEFAULT_KEY_ENV = "BFL_API_KEY"
DEFAULT_BASE_URL = "https://api.bfl.ai"
DEFAULT_SIZE = (1024, 1024)
MODERATED = ("Request Moderated", "Content Moderated")
MAX_REFERENCES = 8  # input_image plus input_image_2 .. input_image_8
FIRST_POLL_SECONDS = 0.5  # BFL's own examples poll every half second
MAX_POLL_SECONDS = 4.0
LEARNED_FIRST_POLL = 0.9  # of the typical time to Ready
MAX_POLL_FAILURES = 5  # 5xx or broken connections in a row while polling


class ProviderBilling(GeneratorError):
    """The provider refused to work for want of credits (its 402): our account's, never the client's."""

    code = "provider_billing"


FLUX_SIZES = SizeRule(free=True, min_side=64, max_side=4096, multiple_of=16, max_pixels=2048 * 2048)
CAPABILITIES = Capabilities(
    options={"size": ANY, "output_format": ("png", "jpeg")},
    sizes=FLUX_SIZES,
    partial_images=False,
    notes={
        "quality": "FLUX models take no quality level",
        "background": "FLUX models draw no transparent background",
        "output_format": "FLUX answers png or jpeg",
        "negative_prompt": "FLUX models take no negative prompt; say what to leave out in the prompt",
    },
)


capabilities = fixed(CAPABILITIES)


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool) -> "BflImageGenerator":
    return BflImageGenerator(
        model=entry.provider_model,
        api_key=required_key(entry, context, DEFAULT_KEY_ENV),
        base_url=entry.base_url or DEFAULT_BASE_URL,
        timeout_seconds=context.timeout(entry),
        connect_timeout_seconds=context.connect_timeout_seconds,
    )


class BflImageGenerator(HttpProvider):
    name = "bfl"
    label = "the FLUX API"
    max_sources = MAX_REFERENCES

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str,
        timeout_seconds: float,
        connect_timeout_seconds: float = 10.0,
        first_poll_seconds: float = FIRST_POLL_SECONDS,
    ) -> None:
        # Each HTTP call has the connect timeout and the whole generation the deployment's timeout.
        super().__init__(timeout_seconds=timeout_seconds, connect_timeout_seconds=connect_timeout_seconds)
        self.default_model = model
        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._deadline_seconds = timeout_seconds
        self._first_poll = first_poll_seconds
        self._typical: float | None = None  # seconds this deployment's tasks lately took to be seen Ready

    async def _make(
        self, request: GenerationRequest, images: list[SourceImage], call: Call
    ) -> GeneratedImage:
        try:
            async with asyncio.timeout(self._deadline_seconds):
                return await self._submit_and_poll(request, images)
        except TimeoutError:
            raise GeneratorTimeout("the FLUX API did not finish the image in time") from None

    async def _submit_and_poll(self, request: GenerationRequest, images: list[SourceImage]) -> GeneratedImage:
        width, height = _size(request, images)
        body: dict[str, Any] = {"prompt": request.prompt, "width": width, "height": height}
        if request.output_format:
            body["output_format"] = request.output_format
        for index, image in enumerate(images):
            body["input_image" if index == 0 else f"input_image_{index + 1}"] = base64.b64encode(
                image.data
            ).decode()
        model = request.model or self.default_model
        status, answer, _ = await self.request_json(
            "POST", f"{self._base_url}/v1/{model}", json=body, headers=self._headers()
        )
        if status == 402:
            log.warning("the FLUX API refused for want of credits (HTTP 402)")
            raise ProviderBilling("the FLUX API account is out of credits")
        if status in (401, 403):
            raise GeneratorError("the FLUX API refused our key (check the entry's api_key_env)")
        if status == 404:
            raise GeneratorModelUnavailable(f"the FLUX API has no model {model!r}")
        if status != 200 or not isinstance(answer, dict) or not answer.get("polling_url"):
            raise GeneratorError(f"the FLUX API refused the request (HTTP {status}): {_detail(answer)}")
        result = await self._poll(str(answer["polling_url"]), str(answer.get("id", "")))
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str):
            raise GeneratorError("the FLUX API answered Ready without a sample")
        data = await self.download(sample)  # at once: the sample URL expires
        return GeneratedImage(
            data=data, model=model, size=f"{width}x{height}", output_format=request.output_format
        )

    async def _poll(self, polling_url: str, task: str) -> Any:
        headers = self._headers() if self._trusted(polling_url) else {"accept": "application/json"}
        started = time.monotonic()
        # The first poll where this deployment's tasks have lately been ready, then backoff from there:
        # few polls, and a task seen Ready soon after it is.
        learned = self._typical is not None and self._typical * LEARNED_FIRST_POLL > self._first_poll
        wait = self._typical * LEARNED_FIRST_POLL if learned and self._typical else self._first_poll
        failures = 0
        while True:
            await asyncio.sleep(wait)
            try:
                status, answer, _ = await self.request_json("GET", polling_url, headers=headers)
            except GeneratorRateLimited as exc:  # the provider's pace: its Retry-After, or twice as long
                pace = self._first_poll if learned else wait
                wait, learned = min(max(exc.retry_after or 0.0, pace * 2), MAX_POLL_SECONDS * 4), False
                continue
            except GeneratorError as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES or not exc.details.get("failover"):
                    raise GeneratorError(f"polling the FLUX task failed: {exc.message}") from None
                wait, learned = min((self._first_poll if learned else wait) * 2, MAX_POLL_SECONDS), False
                continue
            failures = 0
            state = answer.get("status") if isinstance(answer, dict) else None
            if status == 404 or state == "Task not found":
                raise GeneratorError(f"the FLUX API lost the task {task}")
            if status != 200:
                raise GeneratorError(f"polling the FLUX task answered HTTP {status}: {_detail(answer)}")
            if state == "Ready":
                seen = time.monotonic() - started
                self._typical = seen if self._typical is None else 0.8 * self._typical + 0.2 * seen
                return answer.get("result")
            if state in MODERATED:
                raise ContentPolicyViolation(f"the FLUX API refused under its content policy: {state}")
            if state in ("Error", "Failed"):
                raise unavailable(f"the FLUX API failed the task: {_detail(answer)}")
            if isinstance(answer, dict):
                _report(answer)
            # Pending (or a state we do not know): later; after a learned first wait, from the first pace.
            wait = self._first_poll if learned else min(wait * 1.5, MAX_POLL_SECONDS)
            learned = False

    def _headers(self) -> dict[str, str]:
        return {"x-key": self._key, "accept": "application/json"}

    def _trusted(self, url: str) -> bool:
        """The polling URL's host is the base URL's, or under its parent domain (api.us1.bfl.ai)."""
        host, base = urlsplit(url).hostname or "", urlsplit(self._base_url).hostname or ""
        parent = (
            base.split(".", 1)[1] if base.count(".") >= 2 and not base.replace(".", "").isdigit() else base
        )
        return host == base or host.endswith("." + parent)

    async def ping(self) -> None:
        """No call: FLUX has no free readiness endpoint, and the key was checked at start."""


def _size(request: GenerationRequest, images: list[SourceImage]) -> tuple[int, int]:
    if request.size not in (None, "auto"):
        width, height = (int(n) for n in request.size.split("x"))
        return width, height
    if images:  # an edit keeps its source's shape, within 4 MP, rounded to FLUX's multiples of 16
        width, height = images[0].width, images[0].height
        scale = min(1.0, (FLUX_SIZES.max_pixels or 0) ** 0.5 / (width * height) ** 0.5)
        return max(64, int(width * scale) // 16 * 16), max(64, int(height * scale) // 16 * 16)
    return DEFAULT_SIZE


def _report(answer: dict[str, Any]) -> None:
    """Strictly between 0 and 1 only: a missing or null progress tells nothing, 1 is the job's own."""
    progress = answer.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return
    if math.isfinite(progress) and 0 < progress < 1:
        report_progress(progress)


def _detail(answer: Any) -> str:
    if isinstance(answer, dict):
        detail = answer.get("detail") or answer.get("details") or answer.get("status") or answer
        return str(detail)[:300]
    return "no details"

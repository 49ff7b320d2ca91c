"""Google's Gemini image models ("Nano Banana") as a catalogue provider: the google-genai SDK's
generate_content with image output.

- `size` becomes imageConfig: an aspect ratio and 1K/2K/4K; a size Gemini does not draw is a 422 naming
  the nearest it does. output_format and output_compression are honoured by converting what it answers.
- Text parts become revised_prompt; usageMetadata becomes usage (OpenAI's shape, so prices and budgets
  read it alike).
- finishReason IMAGE_SAFETY / IMAGE_PROHIBITED_CONTENT (or a blocked prompt) with no image is a 422
  content_policy_violation with the reason, never an empty 200.
- Edits send the stored image and references as inline parts after the prompt.
- 429, 5xx, timeouts and connections never made fail over to the next deployment; the SDK's own retries
  are off (routing decides where a retry goes).
"""

import asyncio
import logging
from typing import Any

from pixyproxy.adapters.openai.failures import Redactor, retry_after_seconds, root, transport_failure
from pixyproxy.adapters.providers.base import (
    Call,
    Provider,
    ProviderContext,
    fixed,
    required_key,
    unavailable,
)
from pixyproxy.domain.capabilities import ANY, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorRateLimited,
    GeneratorTimeout,
    ImageException,
    InvalidImageRequest,
)
from pixyproxy.domain.models import GeneratedImage, GenerationRequest, SourceImage

log = logging.getLogger(__name__)

FIELDS: frozenset[str] = frozenset()
NEEDS_KEY = True
DEFAULT_KEY_ENV = "GEMINI_API_KEY"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
REFUSALS = {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"}

# What Gemini's image models draw: aspect ratio -> WIDTHxHEIGHT at 1K, 2K and 4K (Google's table).
SIZES: dict[str, tuple[str, str, str]] = {
    "1:1": ("1024x1024", "2048x2048", "4096x4096"),
    "2:3": ("848x1264", "1696x2528", "3392x5056"),
    "3:2": ("1264x848", "2528x1696", "5056x3392"),
    "3:4": ("896x1200", "1792x2400", "3584x4800"),
    "4:3": ("1200x896", "2400x1792", "4800x3584"),
    "4:5": ("928x1152", "1856x2304", "3712x4608"),
    "5:4": ("1152x928", "2304x1856", "4608x3712"),
    "9:16": ("768x1376", "1536x2752", "3072x5504"),
    "16:9": ("1376x768", "2752x1536", "5504x3072"),
    "21:9": ("1584x672", "3168x1344", "6336x2688"),
}
TIERS = ("1K", "2K", "4K")
PING_SECONDS = 10
IMAGE_CONFIG = {size: (ratio, TIERS[i]) for ratio, sizes in SIZES.items() for i, size in enumerate(sizes)}


def _pixels(size: str) -> tuple[int, int]:
    width, height = (int(n) for n in size.split("x"))
    return width, height


class GeminiSizes(SizeRule):
    """Gemini's own sizes; another is refused naming the nearest (by aspect ratio, then area)."""

    def problem(self, size: str) -> str | None:
        if size == "auto" or size in IMAGE_CONFIG:
            return None
        width, height = _pixels(size)

        def distance(candidate: str) -> tuple[float, float]:
            w, h = _pixels(candidate)
            return (abs(w / h - width / height), abs(w * h - width * height))

        nearest = min(IMAGE_CONFIG, key=distance)
        return f"Gemini draws fixed sizes; the nearest is {nearest} ({' '.join(IMAGE_CONFIG[nearest])})"


CAPABILITIES = Capabilities(
    options={
        "size": ANY,
        "output_format": ("png", "webp", "jpeg"),  # converted from what Gemini answers
        "output_compression": ANY,
    },
    sizes=GeminiSizes(fixed=tuple(IMAGE_CONFIG)),
    partial_images=False,
    notes={
        "quality": "Gemini image models take no quality level; size picks 1K, 2K or 4K",
        "background": "Gemini image models draw no transparent background",
        "negative_prompt": "Gemini image models take no negative prompt; say what to leave out in the prompt",
    },
)


capabilities = fixed(CAPABILITIES)


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool) -> "GeminiImageGenerator":
    return GeminiImageGenerator(
        model=entry.provider_model,
        api_key=required_key(entry, context, DEFAULT_KEY_ENV),
        base_url=entry.base_url or DEFAULT_BASE_URL,
        timeout_seconds=context.timeout(entry),
    )


class GeminiImageGenerator(Provider):
    name = "gemini"
    label = "the Gemini API"

    def __init__(self, *, model: str, api_key: str, base_url: str, timeout_seconds: float) -> None:
        from google import genai
        from google.genai import types

        self.default_model = model
        self._types = types
        self._redact = Redactor(api_key)
        self._client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                timeout=int(timeout_seconds * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    async def _make(
        self, request: GenerationRequest, images: list[SourceImage], call: Call
    ) -> GeneratedImage:
        types = self._types
        parts = [types.Part.from_text(text=request.prompt)]
        parts += [types.Part.from_bytes(data=image.data, mime_type=image.content_type) for image in images]
        image_config = None
        if request.size not in (None, "auto"):
            ratio, tier = IMAGE_CONFIG[request.size]
            image_config = types.ImageConfig(aspect_ratio=ratio, image_size=tier)
        config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], image_config=image_config)
        try:
            response = await self._client.aio.models.generate_content(
                model=request.model or self.default_model, contents=parts, config=config
            )
        except Exception as exc:  # the SDK's errors, and its transports' (httpx or aiohttp)
            raise self._failure(exc) from None
        return self._image(request, response)

    def _image(self, request: GenerationRequest, response: Any) -> GeneratedImage:
        candidates = response.candidates or []
        candidate = candidates[0] if candidates else None
        parts = (candidate.content.parts or []) if candidate and candidate.content else []
        data = next((p.inline_data.data for p in parts if p.inline_data and p.inline_data.data), None)
        text = " ".join(p.text for p in parts if p.text and not p.thought).strip()
        if data is None:
            reason = _reason(candidate, response)
            if reason in REFUSALS:
                raise ContentPolicyViolation(
                    f"the Gemini model refused the prompt under its safety policy: {reason}"
                )
            raise GeneratorError(
                f"the Gemini model answered without an image (finish reason {reason or 'none'})"
            )
        return GeneratedImage(
            data=data,
            model=request.model or self.default_model,
            size=request.size if request.size not in (None, "auto") else None,
            revised_prompt=text or None,
            usage=_usage(response.usage_metadata),
            output_format=request.output_format,
        )

    def _failure(self, exc: Exception) -> ImageException:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            code, status = exc.code or 0, exc.status or ""
            message = self._redact(str(exc.message or ""))
            log.warning("Gemini answered HTTP %s %s: %s", code, status, message)
            if code == 429:
                headers = getattr(getattr(exc, "response", None), "headers", None) or {}
                return GeneratorRateLimited(
                    "the Gemini model is rate limiting us; try again later",
                    retry_after=retry_after_seconds(headers),
                )
            if code >= 500:
                return unavailable(f"the Gemini model failed (HTTP {code} {status})")
            if code in (401, 403) or "API key" in message:
                return GeneratorError("the Gemini API refused our key (check the entry's api_key_env)")
            if code == 404:
                return GeneratorModelUnavailable(
                    f"the Gemini API has no model {self.default_model!r}: {message}"
                )
            return InvalidImageRequest(f"the Gemini model refused the request: {message}")
        never_sent, timed_out = transport_failure(exc)
        log.warning("Gemini call failed: %s", root(exc))
        if timed_out or isinstance(exc, asyncio.TimeoutError):
            return GeneratorTimeout()
        if never_sent:
            return unavailable("the Gemini API could not be reached")
        return GeneratorError("the connection to the Gemini API broke before it answered")

    async def ping(self) -> None:
        """models.get of the model: free, and it answers whether the key is taken and the model is
        there (a wrong key is named, never shown)."""
        try:
            await self._client.aio.models.get(
                model=self.default_model, config={"http_options": {"timeout": PING_SECONDS * 1000}}
            )
        except Exception as exc:
            failure = self._failure(exc)
            raise (
                failure if isinstance(failure, GeneratorError) else GeneratorError(failure.message)
            ) from None

    async def close(self) -> None:
        await self._client.aio.aclose()


def _reason(candidate: Any, response: Any) -> str:
    if candidate is not None and candidate.finish_reason is not None:
        return str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
    feedback = getattr(response, "prompt_feedback", None)
    blocked = getattr(feedback, "block_reason", None)
    return str(getattr(blocked, "value", blocked)) if blocked is not None else ""


def _usage(metadata: Any) -> dict[str, Any] | None:
    """usageMetadata in OpenAI's shape: input and output tokens with their text and image parts."""
    if metadata is None:
        return None

    def by_modality(details: Any) -> dict[str, int]:
        counts = {"text_tokens": 0, "image_tokens": 0}
        for item in details or []:
            modality = str(getattr(item.modality, "value", item.modality) or "").lower()
            if modality in ("text", "image"):
                counts[f"{modality}_tokens"] += item.token_count or 0
        return counts

    spent_in = metadata.prompt_token_count or 0
    spent_out = metadata.candidates_token_count or 0
    return {
        "input_tokens": spent_in,
        "input_tokens_details": by_modality(metadata.prompt_tokens_details),
        "output_tokens": spent_out,
        "output_tokens_details": by_modality(metadata.candidates_tokens_details),
        "total_tokens": metadata.total_token_count or spent_in + spent_out,
    }

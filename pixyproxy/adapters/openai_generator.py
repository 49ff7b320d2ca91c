"""The OpenAI image generator: the official SDK's AsyncOpenAI, against OpenAI or any compatible server.

Configuration: OPENAI_API_KEY and OPENAI_BASE_URL are read by the SDK itself (so any OpenAI-compatible
server works); model, default size and quality, timeouts and the retry budget come from the
PIXYPROXY_OPENAI_* settings.

Money: a retry can pay twice for one image, so the SDK's own retries are off (it also retries read
timeouts, 408 and 409, after which the provider may have generated and billed) and this adapter retries,
boundedly, only where no image can have been made: a connection that was never established, 429, and
500/502/503 (no image in those answers). A read timeout, a dropped connection after the request went out
and 504 (a gateway gave up; the provider may still be generating) are never retried.
"""

import asyncio
import base64
import binascii
import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx2
import openai
import orjson

from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    ImageException,
    InvalidImageRequest,
)
from pixyproxy.domain.models import GeneratedImage, GenerationRequest

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = 10.0  # a 429 asking for a longer pause is answered 503 + Retry-After, not waited out
INITIAL_BACKOFF, MAX_BACKOFF = 0.5, 4.0
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024  # a 3840x2160 PNG is ~25 MB
DOWNLOAD_TIMEOUT = 60.0
OFFLOAD_BYTES = 256 * 1024  # JSON + base64 above this is decoded off the event loop
CONTENT_POLICY_CODES = {"content_policy_violation", "moderation_blocked"}
_KEY_PATTERN = re.compile(r"\b(sk|key|rk)-[A-Za-z0-9_*.\-]{4,}")

Transport = Literal["aiohttp", "httpx"]


# -- what each model family takes ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelFamily:
    name: str
    qualities: frozenset[str] | None  # None: any (an unknown OpenAI-compatible server decides)
    sizes: frozenset[str] | None  # None: any WIDTHxHEIGHT within `flexible`'s limits
    takes_response_format: bool  # GPT-image models always answer base64 and refuse the parameter
    group: str  # models a request may switch between: those of the configured model's group

    def check_size(self, size: str) -> str | None:
        """None when the size is fine, else why not."""
        if self.sizes is not None:
            if size in self.sizes:
                return None
            return f"{self.name} takes {', '.join(sorted(self.sizes))}"
        if size == "auto":
            return None
        width, height = (int(n) for n in size.split("x"))
        if self.group == "gpt-image":  # gpt-image-2 and later: free sizes in multiples of 16
            if width % 16 or height % 16:
                return f"{self.name} takes sides that are multiples of 16"
            if max(width, height) > 3 * min(width, height):
                return f"{self.name} takes aspect ratios between 1:3 and 3:1"
            if max(width, height) > 3840 or width * height > 3840 * 2160:
                return f"{self.name} takes at most 3840x2160"
            return None
        if not (64 <= width <= 4096 and 64 <= height <= 4096):
            return "each side must be between 64 and 4096"
        return None


GPT_QUALITIES = frozenset({"auto", "low", "medium", "high"})
GPT_FIXED_SIZES = frozenset({"auto", "1024x1024", "1536x1024", "1024x1536"})
_GPT_IMAGE = re.compile(r"^(gpt-image|chatgpt-image)(-[a-z0-9.]+)*$")


def family_of(model: str) -> ModelFamily:
    if model == "dall-e-3":
        return ModelFamily(
            model,
            frozenset({"standard", "hd"}),
            frozenset({"1024x1024", "1792x1024", "1024x1792"}),
            True,
            "dall-e",
        )
    if model == "dall-e-2":
        return ModelFamily(
            model, frozenset({"standard"}), frozenset({"256x256", "512x512", "1024x1024"}), True, "dall-e"
        )
    if _GPT_IMAGE.match(model):
        flexible = model.startswith(("gpt-image-2-", "gpt-image-2.5")) or model == "gpt-image-2"
        qualities = GPT_QUALITIES | {"xhigh", "max"} if model.startswith("gpt-image-2.5") else GPT_QUALITIES
        return ModelFamily(model, qualities, None if flexible else GPT_FIXED_SIZES, False, "gpt-image")
    return ModelFamily(model, None, None, True, f"other:{model}")


# -- the adapter ---------------------------------------------------------------------------------


class OpenAIImageGenerator:
    name = "openai"

    def __init__(
        self,
        model: str = "gpt-image-1",
        size: str | None = None,
        quality: str | None = None,
        timeout_seconds: float = 180.0,
        connect_timeout_seconds: float = 10.0,
        max_retries: int = 2,
        *,
        api_key: str | None = None,  # None: the SDK reads OPENAI_API_KEY
        base_url: str | None = None,  # None: the SDK reads OPENAI_BASE_URL (default: OpenAI itself)
        response_format: Literal["b64_json", "url"] = "b64_json",  # asked of models that take it
        transport: Transport = "aiohttp",
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        download_timeout_seconds: float = DOWNLOAD_TIMEOUT,
        max_retry_wait: float = MAX_RETRY_WAIT,
    ) -> None:
        self.default_model = model
        self.default_size = size
        self.default_quality = quality
        self.max_retries = max_retries
        self.response_format = response_format
        self.max_download_bytes = max_download_bytes
        self.max_retry_wait = max_retry_wait
        self._download_timeout = httpx2.Timeout(download_timeout_seconds, connect=connect_timeout_seconds)
        problem = self._problem(GenerationRequest(prompt="x"))
        if problem:
            raise ValueError(f"PIXYPROXY_OPENAI_* settings: {problem}")
        timeout = httpx2.Timeout(timeout_seconds, connect=connect_timeout_seconds)
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=200)
        # aiohttp: a third of httpx2's client CPU for 200 concurrent requests, measured (docs/openai.md).
        http_client = (
            openai.DefaultAioHttpClient if transport == "aiohttp" else openai.DefaultAsyncHttpxClient
        )
        self._http = http_client(timeout=timeout, limits=limits)
        try:
            self._client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=0,  # ours, below: the SDK's would also retry what may have been billed
                http_client=self._http,
            )
        except openai.OpenAIError as exc:
            raise ValueError(f"the OpenAI generator is not configured: {exc}") from None
        self._secrets = [s for s in (self._client.api_key,) if s and len(s) >= 6]

    # -- validation ---------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        problem = self._problem(request)
        if problem:
            raise InvalidImageRequest(problem)

    def _problem(self, request: GenerationRequest) -> str | None:
        model = request.model or self.default_model
        if request.model is not None and request.model != self.default_model:
            configured = family_of(self.default_model)
            if family_of(request.model).group != configured.group:
                allowed = (
                    f"{self.default_model} or another {configured.group} model"
                    if not configured.group.startswith("other:")
                    else repr(self.default_model)
                )
                return f"model: this server generates with {allowed}, not {request.model!r}"
        family = family_of(model)
        size = request.size or self.default_size
        if size is not None:
            why = family.check_size(size)
            if why:
                default = "" if request.size else f" (the configured default size is {size})"
                return f"size: {why}{default}"
        quality = request.quality or self.default_quality
        if quality is not None and family.qualities is not None and quality not in family.qualities:
            default = "" if request.quality else f" (the configured default quality is {quality})"
            return f"quality: {family.name} takes {', '.join(sorted(family.qualities))}{default}"
        return None

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GeneratedImage:
        self.validate(request)
        model = request.model or self.default_model
        family = family_of(model)
        params: dict[str, Any] = {"prompt": request.prompt, "model": model}
        if size := request.size or self.default_size:
            params["size"] = size
        if quality := request.quality or self.default_quality:
            params["quality"] = quality
        if family.takes_response_format:
            params["response_format"] = self.response_format
        raw = await self._call(params)
        body = raw.http_response.content
        if len(body) > OFFLOAD_BYTES:
            answer, item, data = await asyncio.to_thread(self._read_answer, body)
        else:
            answer, item, data = self._read_answer(body)
        if data is None:
            data = await self._download(item["url"])
        revised = item.get("revised_prompt")
        usage = answer.get("usage")
        return GeneratedImage(
            data=data,
            model=model,
            size=_text(answer.get("size")) or params.get("size"),
            quality=_text(answer.get("quality")) or params.get("quality"),
            revised_prompt=revised if isinstance(revised, str) and revised else None,
            usage=usage if isinstance(usage, dict) and usage else None,
        )

    async def _call(self, params: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                return await self._client.images.with_raw_response.generate(**params)
            except openai.APIStatusError as exc:
                wait = self._status_retry_wait(exc, attempt)
                if wait is None:
                    raise self._status_error(exc, params["model"]) from None
                why = f"HTTP {exc.status_code}"
            except openai.APIConnectionError as exc:  # APITimeoutError included
                never_sent, timed_out = _transport_failure(exc)
                if attempt >= self.max_retries or not never_sent:
                    log.warning("generator connection failed: %s", _root(exc))
                    if timed_out:
                        raise GeneratorTimeout() from None
                    if never_sent:
                        raise GeneratorError("the image generator could not be reached") from None
                    broke = "the connection to the image generator broke before it answered"
                    raise GeneratorError(broke) from None
                wait, why = _backoff(attempt), f"connection failed ({_root(exc)})"
            except openai.OpenAIError as exc:
                log.warning("generator answer not understood: %s", type(exc).__name__)
                raise GeneratorError("the image generator's answer could not be read") from None
            attempt += 1
            log.warning("generator %s; retry %d of %d in %.1fs", why, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)

    def _status_retry_wait(self, exc: openai.APIStatusError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this answer must not be retried."""
        status = exc.status_code
        if attempt >= self.max_retries or exc.response.headers.get("x-should-retry") == "false":
            return None
        if status == 429 and exc.code != "insufficient_quota":
            retry_after = retry_after_seconds(exc.response.headers)
            if retry_after is None:
                return _backoff(attempt)
            return retry_after if retry_after <= self.max_retry_wait else None
        if status in (500, 502, 503):  # refused before any image: nothing was billed
            retry_after = retry_after_seconds(exc.response.headers)
            if retry_after is not None and retry_after <= self.max_retry_wait:
                return retry_after
            return _backoff(attempt)
        return None

    def _status_error(self, exc: openai.APIStatusError, model: str) -> ImageException:
        status, code, message = exc.status_code, exc.code, self._redact(_provider_message(exc))
        request_id = exc.response.headers.get("x-request-id") or "-"
        log.warning(
            "generator answered HTTP %d (code %s, provider request %s): %s", status, code, request_id, message
        )
        if status == 401:  # never repeat the provider's text: it quotes part of the key
            return GeneratorError("the image generator refused our credentials (check OPENAI_API_KEY)")
        if status == 403:
            return GeneratorError("the image generator refused access to this model or account")
        if status == 429:
            if code == "insufficient_quota":
                return GeneratorError("the image generator account has run out of quota")
            return GeneratorRateLimited(
                "the image generator is rate limiting us; try again later",
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if status == 400 and _is_content_policy(exc):
            return ContentPolicyViolation(
                f"the image generator refused the prompt under its content policy: {message}"
                if message
                else "the image generator refused the prompt under its content policy"
            )
        if status == 400 and exc.param in ("size", "quality", "model", "prompt"):
            return InvalidImageRequest(f"{exc.param}: the image generator refused it: {message}")
        if status == 404:
            return GeneratorError(f"the image generator has no model {model!r} (or OPENAI_BASE_URL is wrong)")
        if status == 408:
            return GeneratorTimeout()
        if status >= 500:
            return GeneratorError(f"the image generator failed (HTTP {status})")
        return GeneratorError(f"the image generator refused the request (HTTP {status}): {message}")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_PATTERN.sub("[redacted]", text)[:500]

    # -- the answer ---------------------------------------------------------------------------

    @staticmethod
    def _read_answer(body: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
        """(answer, first image item, its bytes when base64 — None when it is a URL to fetch)."""
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise GeneratorError("the image generator's answer is not JSON") from None
        data = answer.get("data") if isinstance(answer, dict) else None
        item = data[0] if isinstance(data, list) and data else None
        if not isinstance(item, dict):
            raise GeneratorError("the image generator answered without an image")
        b64 = item.get("b64_json")
        if isinstance(b64, str) and b64:
            try:
                return answer, item, base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise GeneratorError("the image generator's base64 image is not valid base64") from None
        url = item.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return answer, item, None
        raise GeneratorError("the image generator answered without an image")

    async def _download(self, url: str) -> bytes:
        """Fetch a provider URL at once (they expire), within a timeout and a size cap. Safe to retry."""
        attempt = 0
        while True:
            try:
                return await self._download_once(url)
            except (httpx2.TransportError, _Retryable) as exc:
                if attempt >= self.max_retries:
                    log.warning("image download failed: %s", type(exc).__name__)
                    if _transport_failure(exc)[1]:
                        raise GeneratorTimeout("the generated image was not downloaded in time") from None
                    raise GeneratorError("the generated image could not be downloaded") from None
            attempt += 1
            await asyncio.sleep(_backoff(attempt - 1))

    async def _download_once(self, url: str) -> bytes:
        # No Authorization header: the SDK adds it per API request, never to this client's own requests.
        async with self._http.stream("GET", url, timeout=self._download_timeout) as response:
            if response.status_code >= 500:
                raise _Retryable()
            if response.status_code != 200:
                raise GeneratorError(f"the generated image's URL answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
                raise GeneratorError("the generated image is larger than this server accepts")
            chunks, total = [], 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self.max_download_bytes:
                    raise GeneratorError("the generated image is larger than this server accepts")
                chunks.append(chunk)
            return b"".join(chunks)

    async def close(self) -> None:
        await self._client.close()


class _Retryable(Exception):
    """A download answer worth another try (5xx)."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _backoff(attempt: int) -> float:
    return min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF) * (1 - 0.25 * random.random())


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, as seconds; None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return ""


def _is_content_policy(exc: openai.APIStatusError) -> bool:
    if exc.code in CONTENT_POLICY_CODES:
        return True
    return exc.type == "image_generation_user_error" and "safety" in _provider_message(exc).lower()


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _root(exc: BaseException) -> str:
    root = _chain(exc)[-1]
    return type(root).__name__


def _transport_failure(exc: BaseException) -> tuple[bool, bool]:
    """(never_sent, timed_out). never_sent only when the request provably never reached the provider:
    the connection was never made. Decided on the root error, since the SDK's aiohttp bridge maps even a
    refused or dropped connection to httpx2.ConnectTimeout."""
    chain = _chain(exc)
    from_aiohttp = next((e for e in chain if isinstance(e, aiohttp.ClientError)), None)
    if from_aiohttp is not None:
        never_sent = isinstance(from_aiohttp, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        return never_sent, isinstance(from_aiohttp, aiohttp.ServerTimeoutError)
    never_sent = any(
        isinstance(e, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout) for e in chain
    )
    timed_out = isinstance(exc, openai.APITimeoutError) or any(
        isinstance(e, httpx2.TimeoutException) for e in chain
    )
    return never_sent, timed_out

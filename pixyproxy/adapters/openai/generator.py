"""The OpenAI image generator: the official SDK's AsyncOpenAI, against OpenAI or any compatible server.

OPENAI_API_KEY and OPENAI_BASE_URL are read by the SDK itself (so any OpenAI-compatible server works);
the model, default size and quality, timeouts and the retry budget are handed over from settings.
Request building is in requests.py, failure mapping and retries in failures.py, URL answers in
download.py.
"""

import logging
import time
from typing import Any, Literal

import httpx2
import openai

from pixyproxy.adapters.openai.download import DOWNLOAD_TIMEOUT, MAX_DOWNLOAD_BYTES, Downloader
from pixyproxy.adapters.openai.failures import (
    MAX_RETRY_WAIT,
    Redactor,
    RetryPolicy,
    connection_error,
    is_content_policy,
    provider_message,
    status_error,
    unreadable,
    with_retries,
)
from pixyproxy.adapters.openai.requests import (
    Defaults,
    ResponseFormat,
    decode_base64,
    edit_params,
    generated,
    generation_params,
    read_answer,
)
from pixyproxy.adapters.openai.transport import one_read_client
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorTimeout,
    ImageException,
)
from pixyproxy.domain.models import (
    EditRequest,
    GeneratedImage,
    GenerationRequest,
    OnPartial,
    PartialImage,
    SourceImage,
)

log = logging.getLogger(__name__)

GENERATIONS = "/images/generations"
RECHECK_SECONDS = 60.0
PING_SECONDS = 10.0  # a models check that could not be made is tried again at most this often
# An idle connection is dropped before a server drops it (uvicorn's 5 s, and so many compatible
# servers'): a POST sent on a connection the server is closing fails, and is not retried (it may bill).
KEEPALIVE_SECONDS = 4.0
Transport = Literal["aiohttp", "httpx"]


class OpenAIImageGenerator:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        max_retries: int,
        size: str | None = None,
        quality: str | None = None,
        api_key: str | None = None,  # None: the SDK reads OPENAI_API_KEY
        base_url: str | None = None,  # None: the SDK reads OPENAI_BASE_URL (default: OpenAI itself)
        response_format: ResponseFormat | None = "b64_json",  # asked of models that take it
        transport: Transport = "aiohttp",
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        download_timeout_seconds: float = DOWNLOAD_TIMEOUT,
        max_retry_wait: float = MAX_RETRY_WAIT,
        azure_api_version: str | None = None,  # set: Azure OpenAI (base_url is the resource's endpoint)
    ) -> None:
        self.defaults = Defaults(model, size, quality, response_format)
        self.defaults.check()
        self.policy = RetryPolicy(max_retries, max_retry_wait)
        timeout = httpx2.Timeout(timeout_seconds, connect=connect_timeout_seconds)
        limits = httpx2.Limits(
            max_connections=1000, max_keepalive_connections=200, keepalive_expiry=KEEPALIVE_SECONDS
        )
        # aiohttp: a third of httpx2's client CPU for 200 concurrent requests, measured (docs/openai.md).
        self._http = (
            one_read_client(timeout, limits)
            if transport == "aiohttp"
            else openai.DefaultAsyncHttpxClient(timeout=timeout, limits=limits)
        )
        # Azure: the SDK's AzureOpenAI puts the model (the deployment name) in the path, adds
        # ?api-version= and sends the key as `api-key`; it lists no deployments, so readiness asks the
        # resource's models list instead (_ping_azure).
        self.azure = azure_api_version is not None
        try:
            if self.azure:
                self._client: openai.AsyncOpenAI = openai.AsyncAzureOpenAI(
                    azure_endpoint=base_url or "",  # the catalogue requires it of azure entries
                    api_version=azure_api_version,
                    api_key=api_key,
                    timeout=timeout,
                    max_retries=0,
                    http_client=self._http,
                )
            else:
                self._client = openai.AsyncOpenAI(
                    api_key=api_key,
                    base_url=base_url,
                    timeout=timeout,
                    max_retries=0,  # ours (failures.py): the SDK's would also retry what may be billed
                    http_client=self._http,
                )
        except openai.OpenAIError as exc:
            raise ValueError(f"the OpenAI generator is not configured: {exc}") from None
        self._redact = Redactor(self._client.api_key)
        self._downloader = Downloader(
            self._http,
            max_retries=max_retries,
            timeout_seconds=download_timeout_seconds,
            max_bytes=max_download_bytes,
        )
        self._unready: GeneratorModelUnavailable | None = None
        self._checked_at: float | None = None  # when the models check last got an answer it could use
        self._tried_at = float("-inf")

    @property
    def default_model(self) -> str:
        return self.defaults.model

    # -- requests -----------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        """Nothing beyond the request's own shape checks: the catalogue and the provider decide what a
        model takes."""

    async def generate(
        self,
        request: GenerationRequest,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        params = generation_params(request, self.defaults, safety_identifier)
        return await self._make(request, params, "generate", partial_images, on_partial)

    async def edit(
        self,
        request: EditRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        params = edit_params(request, self.defaults, images, mask, safety_identifier)
        return await self._make(request, params, "edit", partial_images, on_partial)

    async def _make(
        self,
        request: GenerationRequest,
        params: dict[str, Any],
        operation: Literal["generate", "edit"],
        partial_images: int,
        on_partial: OnPartial | None,
    ) -> GeneratedImage:
        """The Images API's `operation`, streamed where previews are wanted."""
        images = self._client.images
        if on_partial is not None and partial_images > 0:
            return await self._stream(request, params, getattr(images, operation), partial_images, on_partial)
        send = self._post_generation if operation == "generate" else self._post_edit
        response = await with_retries(lambda: send(params), self.policy, self._status_error(request, params))
        # Decoded here, once, on the loop: CPython's JSON parser and base64 decoder hold the GIL, so a
        # thread would add a hand-off and spare the loop nothing.
        answer, item, data = read_answer(response.content)
        if data is None:
            data = await self._downloader.fetch(item["url"])
        return generated(data, params, answer, item)

    async def _post_generation(self, params: dict[str, Any]) -> httpx2.Response:
        """The SDK's own request, as images.generate sends it, less its walk of the params through the
        typed transform (they are plain JSON values already)."""
        return await self._client.post(
            GENERATIONS,
            body=params,
            cast_to=httpx2.Response,
            options={"security": {"bearer_auth": True}},  # as images.generate: never an admin key
        )

    async def _post_edit(self, params: dict[str, Any]) -> httpx2.Response:
        """Multipart: the SDK's images.edit builds the form."""
        raw = await self._client.images.with_raw_response.edit(**params)
        return raw.http_response

    async def _stream(
        self,
        request: GenerationRequest,
        params: dict[str, Any],
        method: Any,
        partial_images: int,
        on_partial: OnPartial,
    ) -> GeneratedImage:
        """Server-sent events: partial images to on_partial as they come, then the completed image. Only
        opening the stream is retried; once events flow the provider is making (and billing) the image."""
        params = {**params, "stream": True, "partial_images": min(3, partial_images)}
        stream = await with_retries(
            lambda: method(**params), self.policy, self._status_error(request, params)
        )
        try:
            async for event in stream:
                kind = getattr(event, "type", "")
                if kind.endswith(".partial_image"):
                    data = decode_base64(event.b64_json)
                    fmt = getattr(event, "output_format", None) or request.format
                    await on_partial(PartialImage(event.partial_image_index, data, fmt))
                elif kind.endswith(".completed"):
                    answer = event.model_dump(mode="json", exclude={"b64_json"})
                    return generated(decode_base64(event.b64_json), params, answer)
        except openai.APIConnectionError as exc:
            raise connection_error(exc) from None
        except openai.APIError as exc:  # an `error` event in the stream
            message = self._redact(provider_message(exc)) or "no reason given"
            log.warning("generator stream failed: %s", message)
            if is_content_policy(exc):
                raise ContentPolicyViolation(
                    f"the image generator refused the prompt under its content policy: {message}"
                ) from None
            raise GeneratorError(f"the image generator failed while streaming: {message}") from None
        except (openai.OpenAIError, ValueError) as exc:
            raise unreadable(exc) from None
        finally:
            await stream.close()
        raise GeneratorError("the image generator's stream ended without an image")

    def _status_error(self, request: GenerationRequest, params: dict[str, Any]):
        def describe(exc: openai.APIStatusError) -> ImageException:
            return status_error(
                exc, model=params["model"], model_named=request.model is not None, redact=self._redact
            )

        return describe

    # -- readiness ----------------------------------------------------------------------------

    async def init(self) -> None:
        if not self.azure:
            await self._check_models()

    async def ping(self) -> None:
        """Fails only when the server answered that it does not offer the configured model; a server
        that could not be asked (or has no /v1/models) is not held against readiness."""
        if self.azure:
            await self._ping_azure()
            return
        if self._checked_at is None and time.monotonic() - self._tried_at >= RECHECK_SECONDS:
            await self._check_models()
        if self._unready is not None:
            raise self._unready

    async def _ping_azure(self) -> None:
        """Azure's cheapest data-plane call: the resource's models list for the api-version. It answers
        whether the endpoint, the api-version and the key are taken (a wrong key is named, never shown);
        it lists models, not deployments, so a deployment's name is checked by its first call."""
        try:
            await self._client.models.list(timeout=PING_SECONDS)
        except openai.AuthenticationError:
            raise GeneratorError("Azure OpenAI refused our key (check the entry's api_key_env)") from None
        except openai.NotFoundError:
            raise GeneratorError(
                "Azure OpenAI answered 404: check the entry's base_url and api_version"
            ) from None
        except openai.APIStatusError as exc:
            message = self._redact(provider_message(exc)) or "no reason given"
            raise GeneratorError(f"Azure OpenAI answered HTTP {exc.status_code}: {message}") from None
        except openai.APITimeoutError:
            raise GeneratorTimeout("Azure OpenAI did not answer the readiness check in time") from None
        except (openai.OpenAIError, ValueError) as exc:
            log.warning("Azure OpenAI readiness check failed: %s", type(exc).__name__)
            raise GeneratorError("Azure OpenAI could not be reached") from None

    @property
    def models_checked(self) -> bool:
        """Whether the server has answered which models it offers (or that it keeps no list)."""
        return self._checked_at is not None

    async def _check_models(self) -> None:
        self._tried_at = time.monotonic()
        model = self.defaults.model
        try:
            page = await self._client.models.list(timeout=10)
            offered = [m.id for m in page.data]
        except openai.NotFoundError:
            log.warning(
                "the image generator has no /v1/models; the configured model %r is not checked", model
            )
            self._checked_at, self._unready = time.monotonic(), None
            return
        except (openai.OpenAIError, ValueError) as exc:
            log.warning("could not ask the image generator which models it offers: %s", type(exc).__name__)
            return
        self._checked_at = time.monotonic()
        if model in offered:
            self._unready = None
            log.info("the image generator offers the configured model %r", model)
            return
        images = [m for m in offered if "image" in m or m.startswith("dall-e")] or offered
        shown = ", ".join(sorted(images)[:30]) or "none"
        self._unready = GeneratorModelUnavailable(
            f"model {model!r} is not offered by the server (PIXYPROXY_OPENAI_MODEL); it offers {shown}"
        )
        log.error(
            "the configured model %r (PIXYPROXY_OPENAI_MODEL) is not offered by the image generator; "
            "image models it offers: %s",
            model,
            shown,
        )

    async def close(self) -> None:
        await self._client.close()
